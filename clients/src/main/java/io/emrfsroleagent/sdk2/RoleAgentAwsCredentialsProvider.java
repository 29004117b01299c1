package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.AgentClient;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.agent.S3Locations;
import io.emrfsroleagent.agent.ScopeCache;
import java.net.URI;
import java.time.Clock;
import org.apache.hadoop.conf.Configuration;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkClientException;

/**
 * Bucket-level credentials for S3A on the AWS SDK for Java v2 ({@code fs.s3a.aws.credentials.provider}):
 * asks the agent for {@code location=s3://<bucket>/} on behalf of the Hadoop user that created the filesystem,
 * and keeps the answer as {@link ScopeCache} does (refreshed ahead of expiry, one request in flight).
 * Per-request credentials come from {@link RoleAgentExecutionInterceptor}; requests it does not cover (those
 * without a key) are signed with these.
 *
 * <p>Settings: the {@code emrfs-role-agent.*} keys of the filesystem's configuration ({@link AgentSettings}).
 */
public final class RoleAgentAwsCredentialsProvider implements AwsCredentialsProvider {
  private final String location;
  private final ScopeCache<AwsCredentials> cache;

  /** The constructor S3A calls with the filesystem's URI and configuration. */
  public RoleAgentAwsCredentialsProvider(URI fsUri, Configuration conf) {
    this(fsUri, conf, Clock.systemUTC());
  }

  RoleAgentAwsCredentialsProvider(URI fsUri, Configuration conf, Clock clock) {
    String bucket = fsUri == null ? null : fsUri.getHost() != null ? fsUri.getHost() : fsUri.getAuthority();
    if (bucket == null || bucket.isEmpty()) {
      throw new IllegalArgumentException("RoleAgentAwsCredentialsProvider needs a filesystem URI with a bucket,"
          + " got " + fsUri);
    }
    int at = bucket.lastIndexOf('@');
    if (at >= 0) {
      bucket = bucket.substring(at + 1); // never forward credentials embedded in a URI
    }
    this.location = S3Locations.bucketRoot(bucket);
    this.cache = new ScopeCache<>(new AgentClient(AgentSettings.from(conf)), AgentSettings.hadoopUser(conf),
        Sdk2Credentials::of, clock);
  }

  @Override
  public AwsCredentials resolveCredentials() {
    try {
      return cache.get(location).value();
    } catch (AgentException e) {
      throw SdkClientException.create(e.getMessage(), e);
    }
  }

  @Override
  public String toString() {
    return "RoleAgentAwsCredentialsProvider{location=" + location + ", user=" + cache.user() + "}";
  }
}
