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
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.http.SdkHttpRequest;

/**
 * Per-request credentials for the AWS SDK for Java v2 S3 clients (Hadoop S3A 3.4.x, EMR 7.10 and later):
 * for each S3 request, asks the agent (through a {@link ScopeCache}) for the request's own location and signs
 * the request with the answer, so that prefix rules inside a bucket apply request by request.
 *
 * <p>S3A loads it with {@code fs.s3a.audit.enabled=true} and
 * {@code fs.s3a.audit.execution.interceptors=io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor} and hands
 * it the filesystem's configuration ({@link #setConf}); the Hadoop user is the one that created the filesystem.
 *
 * <p>How the credentials reach the signer: through the {@code AwsSignerExecutionAttribute.AWS_CREDENTIALS}
 * execution attribute, written once the SDK has chosen the auth scheme (in {@link #modifyHttpRequest}, before
 * signing). SDK versions before 2.47 ignore a credentials override set on the request in
 * {@code modifyRequest} (the identity is resolved earlier), while the attribute replaces the chosen identity
 * in every 2.x version with the identity-based signers (2.21 and later).
 *
 * <p>Requests without a key keep the client's own credentials (the bucket-level provider). Where a request is
 * located: {@link V2RequestLocations}.
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

  @Override
  @SuppressWarnings("deprecation") // AWS_CREDENTIALS: the one override every 2.x signer path honours
  public SdkHttpRequest modifyHttpRequest(Context.ModifyHttpRequest context,
      ExecutionAttributes executionAttributes) {
    RequestLocation where = V2RequestLocations.of(context.request());
    if (where != null) {
      AwsCredentials credentials;
      try {
        credentials = where.resolve(cache).value();
      } catch (AgentException e) {
        throw SdkClientException.create(e.getMessage(), e);
      }
      executionAttributes.putAttribute(
          software.amazon.awssdk.auth.signer.AwsSignerExecutionAttribute.AWS_CREDENTIALS, credentials);
    }
    return context.httpRequest();
  }

  @Override
  public String toString() {
    ScopeCache<?> c = cache;
    return "RoleAgentExecutionInterceptor{user=" + c.user() + ", scopes=" + c.size() + "}";
  }
}
