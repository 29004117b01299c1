package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.AgentException;
import software.amazon.awssdk.awscore.exception.AwsErrorDetails;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.services.s3.model.S3Exception;

/**
 * The agent's errors as the SDK v2 exceptions S3 clients act on, with the agent's message:
 *
 * <ul>
 *   <li>a refusal ({@link AgentException.Kind#REFUSED}: a deny, {@code ImpersonationDenied}, a wrong token, a
 *       copy across sessions) becomes the access-denied error S3 itself would send: an {@link S3Exception} with
 *       status 403 and error code {@code AccessDenied}. Hadoop S3A 3.4 ({@code S3AUtils.translateException})
 *       turns it into {@code java.nio.file.AccessDeniedException}, which its retry policy fails at once; the
 *       SDK's own retry conditions do not retry it either;</li>
 *   <li>an invalid request ({@link AgentException.Kind#INVALID}) becomes a 400 {@code InvalidRequest}
 *       ({@code AWSBadRequestException} in S3A, not retried either);</li>
 *   <li>everything else (agent unreachable, 5xx, 429) stays a retryable {@link SdkClientException}.</li>
 * </ul>
 */
public final class V2Errors {
  private V2Errors() {}

  public static SdkException translate(AgentException e) {
    switch (e.kind()) {
      case REFUSED:
        return s3Error(e, 403, "AccessDenied");
      case INVALID:
        return s3Error(e, 400, "InvalidRequest");
      default:
        return SdkClientException.create(e.getMessage(), e);
    }
  }

  private static S3Exception s3Error(AgentException e, int status, String code) {
    return (S3Exception) S3Exception.builder()
        .message(e.getMessage())
        .statusCode(status)
        .awsErrorDetails(AwsErrorDetails.builder()
            .errorCode(code)
            .errorMessage(e.getMessage())
            .serviceName("S3")
            .build())
        .cause(e)
        .build();
  }
}
