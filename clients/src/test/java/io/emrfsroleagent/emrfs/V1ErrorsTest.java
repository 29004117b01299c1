package io.emrfsroleagent.emrfs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.amazonaws.AmazonServiceException;
import com.amazonaws.SdkClientException;
import com.amazonaws.services.s3.model.AmazonS3Exception;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.testing.S3aErrors;
import java.io.IOException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The agent's errors as SDK v1 exceptions ({@link V1Errors}), and what Hadoop S3A 3.3 (hadoop-aws on the class
 * path: its own {@code S3AUtils.translateException} and retry policy) makes of them.
 */
final class V1ErrorsTest {

  @ParameterizedTest(name = "HTTP {0} {1}: S3 status {2} {3}, S3A {4} and {5}")
  @CsvSource({
      "403, AccessDenied, 403, AccessDenied, java.nio.file.AccessDeniedException, FAIL",
      "403, ImpersonationDenied, 403, AccessDenied, java.nio.file.AccessDeniedException, FAIL",
      "401, Unauthorized, 403, AccessDenied, java.nio.file.AccessDeniedException, FAIL",
      "0, CrossScopeCopy, 403, AccessDenied, java.nio.file.AccessDeniedException, FAIL",
      "400, InvalidRequest, 400, InvalidRequest, org.apache.hadoop.fs.s3a.AWSBadRequestException, FAIL",
  })
  @DisplayName("a refusal or an invalid request is S3's own error, which S3A fails at once")
  void s3Errors(int status, String code, int s3Status, String s3Code, String s3aException, String retry)
      throws Exception {
    AgentException e = new AgentException("emrfs-role-agent refused: " + code, status, code, null, null);
    RuntimeException translated = V1Errors.translate(e);
    AmazonS3Exception s3 = (AmazonS3Exception) translated;
    assertEquals(s3Status, s3.getStatusCode(), "status");
    assertEquals(s3Code, s3.getErrorCode(), "code");
    assertEquals(AmazonServiceException.ErrorType.Client, s3.getErrorType(), "type");
    assertEquals("Amazon S3", s3.getServiceName(), "service");
    assertEquals("emrfs-role-agent refused: " + code, s3.getErrorMessage(), "the agent's message");
    assertSame(e, s3.getCause(), "cause");
    IOException io = S3aErrors.translate("open", "s3a://b/k", s3);
    assertEquals(s3aException, io.getClass().getName(), "S3A's exception: " + io);
    assertTrue(io.getMessage().contains("emrfs-role-agent refused: " + code), io.getMessage());
    assertEquals(retry, S3aErrors.retryDecision(io), "S3A's retry policy");
  }

  @ParameterizedTest(name = "HTTP {0}: retryable")
  @CsvSource({"0", "429", "500", "503", "504"})
  @DisplayName("an agent that cannot answer now stays a retryable client error")
  void retryable(int status) throws Exception {
    AgentException e = new AgentException("emrfs-role-agent failed", status, null, null, null);
    RuntimeException translated = V1Errors.translate(e);
    assertTrue(translated instanceof SdkClientException, translated.getClass().getName());
    assertFalse(translated instanceof AmazonServiceException, "not a service error: " + translated);
    assertTrue(((SdkClientException) translated).isRetryable(), "the SDK may retry it");
    assertEquals("RETRY", S3aErrors.retryDecision(S3aErrors.translate("open", "s3a://b/k",
        (SdkClientException) translated)), "S3A retries it");
  }
}
