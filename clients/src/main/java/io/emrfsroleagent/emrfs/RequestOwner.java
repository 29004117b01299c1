package io.emrfsroleagent.emrfs;

import com.amazonaws.AmazonWebServiceRequest;
import com.amazonaws.handlers.HandlerContextKey;

/**
 * Which of this project's hooks decides one SDK v1 request, so that an S3 client with S3A's own handler
 * ({@link RoleAgentRequestHandler}) and the JVM-wide one ({@link RoleAgentGlobalRequestHandler}) asks the agent
 * once: S3A's handler claims each request in {@code beforeExecution}, and the JVM-wide one leaves claimed
 * requests alone. The SDK runs a client's own handlers (S3A passes its handlers to the client builder) before
 * the JVM-wide ones (AmazonS3Client.init appends them), so the claim is there when the JVM-wide handler looks.
 * S3A's handler is preferred because it knows the filesystem's Hadoop user.
 *
 * <p>The claim lives in the request object's handler context; S3A builds a new request object per call.
 */
final class RequestOwner {
  /** Keys are equal by name, so even two copies of this class would agree. */
  static final HandlerContextKey<String> OWNER = new HandlerContextKey<>("emrfs-role-agent.RequestOwner");

  private RequestOwner() {}

  static void claim(AmazonWebServiceRequest request, String owner) {
    request.addHandlerContext(OWNER, owner);
  }

  /** The hook that claimed the request, or null. */
  static String owner(AmazonWebServiceRequest request) {
    return request.getHandlerContext(OWNER);
  }
}
