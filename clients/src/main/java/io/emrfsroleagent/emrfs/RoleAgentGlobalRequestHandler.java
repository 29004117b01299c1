package io.emrfsroleagent.emrfs;

import com.amazonaws.AmazonWebServiceRequest;
import com.amazonaws.auth.AWSCredentialsProvider;
import com.amazonaws.handlers.RequestHandler2;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.ClientUser;
import io.emrfsroleagent.agent.GlobalHooks;
import io.emrfsroleagent.agent.HadoopUser;
import io.emrfsroleagent.agent.RequestLocation;
import java.util.function.Supplier;

/**
 * Per-request credentials for every AWS SDK for Java v1 S3 client in the JVM ({@code AmazonS3} clients in job
 * code, S3A on Hadoop 3.3): the SDK loads it for each client it builds, from the global list
 * {@code com/amazonaws/global/handlers/request.handler2s} that emrfs-role-agent-hooks.jar puts on the class
 * path. Before each S3 request runs it asks the agent (through the {@link GlobalHooks} scope cache of the
 * user that built the client, {@link ClientUser}) for the request's own location and sets the answer as the
 * request's credentials, as {@link RoleAgentRequestHandler} does.
 *
 * <ul>
 *   <li>S3 only (request classes of {@code com.amazonaws.services.s3.model}): requests of other services keep
 *       their clients' credentials.</li>
 *   <li>Never a second decision: a request S3A's own {@link RoleAgentRequestHandler} has claimed
 *       ({@link RequestOwner}) is left to it.</li>
 *   <li>Requests with a bucket are decided for their own location, keyless ones for the bucket root
 *       ({@link V1RequestLocations}); requests without a bucket (ListBuckets) keep the client's credentials.</li>
 *   <li>A refusal fails the request as S3's own access-denied error ({@link V1Errors}).</li>
 *   <li>Settings: {@link io.emrfsroleagent.agent.ClientProperties}; they and the scope caches are shared by
 *       every client of the JVM.</li>
 * </ul>
 * No Hadoop needed.
 */
public final class RoleAgentGlobalRequestHandler extends RequestHandler2 {
  /** Whether a request class is one of S3's (its own or a superclass in S3's model package). */
  private static final ClassValue<Boolean> S3_REQUEST = new ClassValue<Boolean>() {
    @Override
    protected Boolean computeValue(Class<?> type) {
      for (Class<?> c = type; c != null; c = c.getSuperclass()) {
        if (c.getName().startsWith("com.amazonaws.services.s3.model.")) {
          return Boolean.TRUE;
        }
      }
      return Boolean.FALSE;
    }
  };

  /** Finds Hadoop (or its absence) once, when the first client is built. */
  private static final class Users {
    static final Supplier<String> CURRENT = HadoopUser.find(RoleAgentGlobalRequestHandler.class.getClassLoader());
  }

  /** Created at the first S3 request of the JVM, not when an SDK client (of any service) is built. */
  private static final class Shared {
    static final GlobalHooks<AWSCredentialsProvider> HOOKS = GlobalHooks.forThisJvm(V1Credentials::provider);
  }

  /** Whose credentials this client's S3 requests ask for. */
  private final ClientUser user;

  /** The SDK calls it for each client it builds, on the thread that builds the client. */
  public RoleAgentGlobalRequestHandler() {
    this.user = ClientUser.of(() -> Users.CURRENT.get()); // a failure here fails S3 requests, not the build
  }

  @Override
  public AmazonWebServiceRequest beforeExecution(AmazonWebServiceRequest request) {
    if (!S3_REQUEST.get(request.getClass()) || RequestOwner.owner(request) != null) {
      return request;
    }
    RequestLocation where = V1RequestLocations.of(request);
    if (where == null) {
      return request;
    }
    GlobalHooks<AWSCredentialsProvider> hooks = Shared.HOOKS;
    try {
      request.setRequestCredentialsProvider(where.resolve(hooks.cache(user)).value());
    } catch (AgentException e) {
      throw V1Errors.translate(hooks.explain(e));
    }
    return request;
  }

  @Override
  public String toString() {
    return "RoleAgentGlobalRequestHandler{user=" + user + "}";
  }
}
