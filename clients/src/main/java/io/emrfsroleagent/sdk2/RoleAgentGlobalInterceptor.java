package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.ClientUser;
import io.emrfsroleagent.agent.GlobalHooks;
import io.emrfsroleagent.agent.HadoopUser;
import io.emrfsroleagent.agent.RequestLocation;
import java.util.function.Supplier;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.interceptor.SdkExecutionAttribute;
import software.amazon.awssdk.http.SdkHttpRequest;

/**
 * Per-request credentials for every AWS SDK for Java v2 S3 client in the JVM (Iceberg's {@code S3FileIO}, plain
 * {@code S3Client}s in job code, S3A): the SDK loads it for each client it builds, from the global list
 * {@code software/amazon/awssdk/global/handlers/execution.interceptors} that emrfs-role-agent-hooks.jar puts on
 * the class path. For each S3 request it asks the agent (through the {@link GlobalHooks} scope cache of the
 * user that built the client, {@link ClientUser}) for the request's own location and signs the request with
 * the answer, as {@link RequestCredentials} does.
 *
 * <ul>
 *   <li>S3 only: requests of other services (STS, Glue, DynamoDB, ...) keep their clients' credentials.</li>
 *   <li>Never a second decision: a request S3A's own {@link RoleAgentExecutionInterceptor} has claimed
 *       ({@link RequestOwner}) is left to it.</li>
 *   <li>Requests with a bucket are decided for their own location, keyless ones for the bucket root
 *       ({@link V2RequestLocations}); requests without a bucket (ListBuckets) keep the client's credentials.</li>
 *   <li>A refusal fails the request as S3's own access-denied error ({@link V2Errors}).</li>
 *   <li>Settings: {@link io.emrfsroleagent.agent.ClientProperties}; they and the scope caches are shared by
 *       every client of the JVM.</li>
 * </ul>
 *
 * <p>The SDK runs JVM-wide interceptors before the S3 client's own and before those of the client's override
 * configuration (SdkDefaultClientBuilder.resolveExecutionInterceptors, 2.24 to 2.57 alike). No Hadoop needed.
 */
public final class RoleAgentGlobalInterceptor implements ExecutionInterceptor {
  static final String OWNER = "jvm-wide";

  /** Finds Hadoop (or its absence) once, when the first client is built. */
  private static final class Users {
    static final Supplier<String> CURRENT = HadoopUser.find(RoleAgentGlobalInterceptor.class.getClassLoader());
  }

  /** Created at the first S3 request of the JVM, not when an SDK client (of any service) is built. */
  private static final class Shared {
    static final GlobalHooks<AwsCredentials> HOOKS =
        GlobalHooks.forThisJvm(Sdk2Credentials::of);
  }

  /** Whose credentials this client's S3 requests ask for. */
  private final ClientUser user;

  /** The SDK calls it for each client it builds, on the thread that builds the client. */
  public RoleAgentGlobalInterceptor() {
    this.user = ClientUser.of(() -> Users.CURRENT.get()); // a failure here fails S3 requests, not the build
  }

  @Override
  public SdkRequest modifyRequest(Context.ModifyRequest context, ExecutionAttributes executionAttributes) {
    SdkRequest request = context.request();
    // The service name first: without the S3 module on the class path, S3 model classes must not be touched.
    if (!"S3".equals(executionAttributes.getAttribute(SdkExecutionAttribute.SERVICE_NAME))
        || !RequestOwner.claim(executionAttributes, OWNER)) {
      return request;
    }
    RequestLocation where = V2RequestLocations.of(request);
    if (where == null) {
      return request;
    }
    GlobalHooks<AwsCredentials> hooks = Shared.HOOKS;
    AwsCredentials credentials;
    try {
      credentials = where.resolve(hooks.cache(user)).value();
    } catch (AgentException e) {
      throw V2Errors.translate(hooks.explain(e));
    }
    return RequestCredentials.override(request, credentials, executionAttributes);
  }

  @Override
  public SdkHttpRequest modifyHttpRequest(Context.ModifyHttpRequest context,
      ExecutionAttributes executionAttributes) {
    RequestCredentials.sign(executionAttributes);
    return context.httpRequest();
  }

  @Override
  public String toString() {
    return "RoleAgentGlobalInterceptor{user=" + user + "}";
  }
}
