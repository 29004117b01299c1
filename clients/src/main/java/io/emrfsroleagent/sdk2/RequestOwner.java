package io.emrfsroleagent.sdk2;

import software.amazon.awssdk.core.interceptor.ExecutionAttribute;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;

/**
 * Which of this project's hooks decides one SDK v2 request, so that an S3 client with S3A's own hook
 * ({@link RoleAgentExecutionInterceptor}) and the JVM-wide one ({@link RoleAgentGlobalInterceptor}) asks the
 * agent once: S3A's hook claims each request in {@code beforeExecution}, which the SDK runs for every
 * interceptor before any {@code modifyRequest}; the JVM-wide hook claims it in {@code modifyRequest} and leaves
 * it alone when it is claimed already (also by a second JVM-wide hook, when its jar is twice on the class
 * path). S3A's hook is preferred because it knows the filesystem's Hadoop user.
 *
 * <p>One attribute for both: the SDK allows one {@link ExecutionAttribute} per name in a JVM.
 */
final class RequestOwner {
  private static final ExecutionAttribute<String> OWNER = new ExecutionAttribute<>("emrfs-role-agent.RequestOwner");

  private RequestOwner() {}

  /** Makes {@code owner} the request's owner unless a hook owns it already; whether it was free. */
  static boolean claim(ExecutionAttributes attributes, String owner) {
    if (attributes.getAttribute(OWNER) != null) {
      return false;
    }
    attributes.putAttribute(OWNER, owner);
    return true;
  }

  /** The hook that owns the request, or null. */
  static String owner(ExecutionAttributes attributes) {
    return attributes.getAttribute(OWNER);
  }
}
