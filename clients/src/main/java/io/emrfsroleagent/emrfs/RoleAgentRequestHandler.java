package io.emrfsroleagent.emrfs;

import com.amazonaws.AmazonWebServiceRequest;
import com.amazonaws.auth.AWSCredentialsProvider;
import com.amazonaws.handlers.RequestHandler2;
import io.emrfsroleagent.agent.AgentClient;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.agent.RequestLocation;
import io.emrfsroleagent.agent.ScopeCache;
import java.time.Clock;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;

/**
 * Per-request credentials for the AWS SDK for Java v1 S3 client (Hadoop S3A 3.3.x, EMR 6.x - 7.9): before each
 * S3 request runs, asks the agent (through a {@link ScopeCache}) for the request's own location and access and
 * sets the answer as the request's credentials, so that prefix rules inside a bucket apply request by request.
 *
 * <p>S3A loads it with {@code fs.s3a.audit.enabled=true} and
 * {@code fs.s3a.audit.request.handlers=io.emrfsroleagent.emrfs.RoleAgentRequestHandler}; S3A constructs it
 * without arguments, so its settings ({@code emrfs-role-agent.*}, see {@link AgentSettings}) come from the
 * Hadoop configuration files on the class path (core-site.xml), unless a caller hands it a configuration
 * through {@link #setConf}. The Hadoop user is the one that created the filesystem.
 *
 * <p>Every S3 request that names a bucket is decided here, requests without a key (HeadBucket, listing a
 * bucket's root, bucket operations) for the bucket root {@code s3://bucket/}; so the bucket-level
 * {@link RoleAgentCredentialsProvider} of the same filesystem hands out only a placeholder and never asks the
 * agent (see {@link io.emrfsroleagent.agent.HookWiring}). Where a request is located and with which access:
 * {@link V1RequestLocations}.
 *
 * <p>A refusal fails the request at once as S3's own access-denied error, with the agent's message
 * ({@link V1Errors}); S3A reports it as {@code java.nio.file.AccessDeniedException} and does not retry it.
 */
public class RoleAgentRequestHandler extends RequestHandler2 implements Configurable {

  private final Clock clock;
  private volatile Configuration conf;
  private volatile ScopeCache<AWSCredentialsProvider> cache;

  /** The constructor S3A calls: settings from the Hadoop configuration files. */
  public RoleAgentRequestHandler() {
    this(new Configuration(), Clock.systemUTC());
  }

  RoleAgentRequestHandler(Configuration conf, Clock clock) {
    this.clock = clock;
    setConf(conf);
  }

  @Override
  public void setConf(Configuration conf) {
    AgentClient client = new AgentClient(AgentSettings.from(conf));
    this.cache = new ScopeCache<>(client, AgentSettings.hadoopUser(conf), V1Credentials::provider, clock);
    this.conf = conf;
  }

  @Override
  public Configuration getConf() {
    return conf;
  }

  @Override
  public AmazonWebServiceRequest beforeExecution(AmazonWebServiceRequest request) {
    RequestOwner.claim(request, "s3a"); // the JVM-wide handler (RoleAgentGlobalRequestHandler) leaves it to us
    RequestLocation where = V1RequestLocations.of(request);
    if (where == null) {
      return request;
    }
    try {
      request.setRequestCredentialsProvider(where.resolve(cache).value());
    } catch (AgentException e) {
      throw V1Errors.translate(e);
    }
    return request;
  }

  @Override
  public String toString() {
    ScopeCache<?> c = cache;
    return "RoleAgentRequestHandler{user=" + c.user() + ", scopes=" + c.size() + "}";
  }
}
