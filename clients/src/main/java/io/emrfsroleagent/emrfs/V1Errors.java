package io.emrfsroleagent.emrfs;

import com.amazonaws.AmazonServiceException;
import com.amazonaws.SdkClientException;
import com.amazonaws.services.s3.model.AmazonS3Exception;
import io.emrfsroleagent.agent.AgentException;

/**
 * The agent's errors as the SDK v1 exceptions S3 clients act on, with the agent's message:
 *
 * <ul>
 *   <li>a refusal ({@link AgentException.Kind#REFUSED}: a deny, {@code ImpersonationDenied}, a wrong token, a
 *       copy across sessions) becomes the access-denied error S3 itself would send: an {@link AmazonS3Exception}
 *       with status 403, error code {@code AccessDenied}, error type {@code Client}, service {@code Amazon S3}.
 *       Hadoop S3A ({@code S3AUtils.translateException}) turns it into {@code java.nio.file.AccessDeniedException},
 *       which its retry policy fails at once;</li>
 *   <li>an invalid request ({@link AgentException.Kind#INVALID}) becomes a 400 {@code InvalidRequest}
 *       ({@code AWSBadRequestException} in S3A, not retried either);</li>
 *   <li>everything else (agent unreachable, 5xx, 429) stays a retryable {@link SdkClientException}.</li>
 * </ul>
 */
public final class V1Errors {
  private V1Errors() {}

  public static RuntimeException translate(AgentException e) {
    switch (e.kind()) {
      case REFUSED:
        return s3Error(e, 403, "AccessDenied");
      case INVALID:
        return s3Error(e, 400, "InvalidRequest");
      default:
        return new SdkClientException(e.getMessage(), e);
    }
  }

  private static AmazonS3Exception s3Error(AgentException e, int status, String code) {
    AmazonS3Exception error = new AmazonS3Exception(e.getMessage(), e);
    error.setStatusCode(status);
    error.setErrorCode(code);
    error.setErrorType(AmazonServiceException.ErrorType.Client);
    error.setServiceName("Amazon S3");
    return error;
  }
}
