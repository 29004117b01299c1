package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.AgentClient;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.agent.RequestLocation;
import io.emrfsroleagent.agent.ScopeCache;
import java.time.Clock;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.awscore.AwsRequest;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.http.SdkHttpRequest;

/**
 * Per-request credentials for the AWS SDK for Java v2 S3 clients (Hadoop S3A 3.4.x, EMR 7.10 and later):
 * for each S3 request, asks the agent (through a {@link ScopeCache}) for the request's own location and access
 * and signs the request with the answer, so that prefix rules inside a bucket apply request by request.
 *
 * <p>S3A loads it with {@code fs.s3a.audit.enabled=true} and
 * {@code fs.s3a.audit.execution.interceptors=io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor} and hands
 * it the filesystem's configuration ({@link #setConf}); the Hadoop user is the one that created the filesystem.
 *
 * <p>How the credentials reach the signer, on every SDK v2 version with identity-based signing (2.21 and later):
 * {@link #modifyRequest} sets them as the request's credentials override, which SDK 2.47 and later honour
 * (they resolve the identity after {@code modifyRequest}); earlier versions resolved the identity in
 * {@code beforeExecution} and ignore that override (aws-sdk-java-v2 #5534), so {@link #modifyHttpRequest}
 * also writes them into the {@code AwsSignerExecutionAttribute.AWS_CREDENTIALS} execution attribute, which
 * replaces the identity of the auth scheme those versions chose. Later versions re-resolve the identity from
 * the override after that hook, so both paths sign with the same credentials.
 *
 * <p>Every S3 request that names a bucket is decided here, requests without a key (HeadBucket, listing the
 * root, bucket operations) for the bucket root {@code s3://bucket/}. The client's own credentials never sign an
 * S3 request, which is why {@link RoleAgentAwsCredentialsProvider} on the same filesystem hands out only a
 * placeholder (SDK 2.24.x resolves it before this hook runs; see {@link io.emrfsroleagent.agent.HookWiring}).
 * Where a request is located and with which access: {@link V2RequestLocations}.
 *
 * <p>A refusal fails the request at once as S3's own access-denied error, with the agent's message
 * ({@link V2Errors}); S3A reports it as {@code java.nio.file.AccessDeniedException} and does not retry it.
 */
public class RoleAgentExecutionInterceptor implements ExecutionInterceptor, Configurable {
  private final Clock clock;
  private volatile Configuration conf;
  private volatile ScopeCache<AwsCredentials> cache;

  /** The constructor S3A calls; it then calls {@link #setConf} with the filesystem's configuration. */
  public RoleAgentExecutionInterceptor() {
    this(new Configuration(), Clock.systemUTC());
  }

  RoleAgentExecutionInterceptor(Configuration conf, Clock clock) {
    this.clock = clock;
    setConf(conf);
  }

  @Override
  public void setConf(Configuration conf) {
    this.cache = new ScopeCache<>(new AgentClient(AgentSettings.from(conf)), AgentSettings.hadoopUser(conf),
        Sdk2Credentials::of, clock);
    this.conf = conf;
  }

  @Override
  public Configuration getConf() {
    return conf;
  }

  /** Claims the request, so that the JVM-wide hook ({@link RoleAgentGlobalInterceptor}) leaves it to this one. */
  @Override
  public void beforeExecution(Context.BeforeExecution context, ExecutionAttributes executionAttributes) {
    RequestOwner.claim(executionAttributes, "s3a");
  }

  /**
   * Resolves the request's credentials and sets them as the request's credentials override: SDK 2.47 and
   * later resolve the identity after this hook and honour it.
   */
  @Override
  public SdkRequest modifyRequest(Context.ModifyRequest context, ExecutionAttributes executionAttributes) {
    SdkRequest request = context.request();
    RequestLocation where = V2RequestLocations.of(request);
    if (where == null || !(request instanceof AwsRequest)) {
      return request;
    }
    AwsCredentials credentials;
    try {
      credentials = where.resolve(cache).value();
    } catch (AgentException e) {
      throw V2Errors.translate(e);
    }
    return RequestCredentials.override(request, credentials, executionAttributes);
  }

  /**
   * Puts the same credentials into the chosen auth scheme, where SDK versions before 2.47 (which resolved the
   * identity in {@code beforeExecution}, ignoring the override) take them from.
   */
  @Override
  public SdkHttpRequest modifyHttpRequest(Context.ModifyHttpRequest context,
      ExecutionAttributes executionAttributes) {
    RequestCredentials.sign(executionAttributes);
    return context.httpRequest();
  }

  @Override
  public String toString() {
    ScopeCache<?> c = cache;
    return "RoleAgentExecutionInterceptor{user=" + c.user() + ", scopes=" + c.size() + "}";
  }
}
