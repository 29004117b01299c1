package io.emrfsroleagent.sdk2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.testing.S3aErrors;
import java.io.IOException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.services.s3.model.S3Exception;

/**
 * The agent's errors as SDK v2 exceptions ({@link V2Errors}), and (on Hadoop 3.4, tag {@code hadoop-3.4}) what
 * S3A's own {@code S3AUtils.translateException} and retry policy make of them.
 */
@Tag("sdk-v2")
final class V2ErrorsTest {

  @ParameterizedTest(name = "HTTP {0} {1}: S3 status {2} {3}")
  @CsvSource({
      "403, AccessDenied, 403, AccessDenied",
      "403, ImpersonationDenied, 403, AccessDenied",
      "401, Unauthorized, 403, AccessDenied",
      "0, CrossScopeCopy, 403, AccessDenied",
      "0, CrossScopeRequest, 403, AccessDenied",
      "400, InvalidRequest, 400, InvalidRequest",
  })
  @DisplayName("a refusal or an invalid request is S3's own error, not retried by the SDK")
  void s3Errors(int status, String code, int s3Status, String s3Code) {
    AgentException e = new AgentException("emrfs-role-agent refused: " + code, status, code, null, null);
    S3Exception s3 = (S3Exception) V2Errors.translate(e);
    assertEquals(s3Status, s3.statusCode(), "status");
    assertEquals(s3Code, s3.awsErrorDetails().errorCode(), "code");
    assertEquals("S3", s3.awsErrorDetails().serviceName(), "service");
    assertEquals("emrfs-role-agent refused: " + code, s3.awsErrorDetails().errorMessage(), "the agent's message");
    assertTrue(s3.getMessage().startsWith("emrfs-role-agent refused: " + code), s3.getMessage());
    assertSame(e, s3.getCause(), "cause");
    assertFalse(s3.retryable(), "the SDK does not retry it");
  }

  @ParameterizedTest(name = "HTTP {0}: retryable")
  @CsvSource({"0", "429", "500", "503", "504"})
  @DisplayName("an agent that cannot answer now stays a client error")
  void clientError(int status) {
    AgentException e = new AgentException("emrfs-role-agent failed", status, null, null, null);
    SdkException translated = V2Errors.translate(e);
    assertEquals(SdkClientException.class, translated.getClass(), "type");
    assertEquals("emrfs-role-agent failed", translated.getMessage(), "message");
  }

  @ParameterizedTest(name = "HTTP {0} {1}: S3A {2}, {3}")
  @CsvSource({
      "403, AccessDenied, java.nio.file.AccessDeniedException, FAIL",
      "401, Unauthorized, java.nio.file.AccessDeniedException, FAIL",
      "0, CrossScopeCopy, java.nio.file.AccessDeniedException, FAIL",
      "400, InvalidRequest, org.apache.hadoop.fs.s3a.AWSBadRequestException, FAIL",
      "503, CredentialsUnavailable, , RETRY",
      "0, , , RETRY",
  })
  @Tag("hadoop-3.4")
  @DisplayName("S3A 3.4 fails refusals and invalid requests at once, retries the rest")
  void s3a(int status, String code, String s3aException, String retry) throws Exception {
    SdkException translated = V2Errors.translate(new AgentException("emrfs-role-agent said " + code, status, code,
        null, null));
    IOException io = S3aErrors.translate("open", "s3a://b/k", translated);
    if (s3aException != null) {
      assertEquals(s3aException, io.getClass().getName(), "S3A's exception: " + io);
    }
    assertTrue(io.getMessage().contains("emrfs-role-agent said " + code), io.getMessage());
    assertEquals(retry, S3aErrors.retryDecision(io), "S3A's retry policy: " + io);
  }
}
