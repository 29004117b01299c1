package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.AgentClient;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.agent.HookWiring;
import io.emrfsroleagent.agent.S3Locations;
import io.emrfsroleagent.agent.ScopeCache;
import java.net.URI;
import java.time.Clock;
import org.apache.hadoop.conf.Configuration;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkClientException;

/**
 * Bucket-level credentials for S3A on the AWS SDK for Java v2 ({@code fs.s3a.aws.credentials.provider}).
 *
 * <p><b>With the per-request hook</b> ({@link RoleAgentExecutionInterceptor} in
 * {@code fs.s3a.audit.execution.interceptors} of this filesystem's configuration, {@code fs.s3a.audit.enabled}
 * not false), the interceptor decides every S3 request for its own location (keyless ones for the bucket root)
 * and this provider never asks the agent: it returns a placeholder ({@link HookWiring#PLACEHOLDER_ACCESS_KEY_ID}
 * with a random secret). SDK 2.24.x resolves the provider's identity before any interceptor runs; the
 * interceptor then replaces the placeholder on every request, and if anything ever signed with it S3 would
 * refuse the request ({@code InvalidAccessKeyId}). So a job with rules only for prefixes (and
 * {@code fallback = "deny"}) needs no credentials for the bucket root, and no job fetches a bucket-wide
 * credential it never uses.
 *
 * <p><b>Without the hook</b> it asks the agent for {@code location=s3://<bucket>/} on behalf of the Hadoop user
 * that created the filesystem, and keeps the answer as {@link ScopeCache} does (refreshed ahead of expiry, one
 * request in flight); every request of the filesystem is signed with it.
 *
 * <p>Settings: the {@code emrfs-role-agent.*} keys of the filesystem's configuration ({@link AgentSettings}).
 */
public final class RoleAgentAwsCredentialsProvider implements AwsCredentialsProvider {
  private final String location;
  /** Null when the per-request hook decides every request ({@link #placeholder} is then set). */
  private final ScopeCache<AwsCredentials> cache;
  private final AwsCredentials placeholder;

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
    if (HookWiring.perRequestHook(conf, fsUri, HookWiring.V2_INTERCEPTORS_KEY,
        RoleAgentExecutionInterceptor.class.getName())) {
      this.cache = null;
      this.placeholder = AwsBasicCredentials.create(HookWiring.PLACEHOLDER_ACCESS_KEY_ID,
          HookWiring.placeholderSecret());
    } else {
      this.cache = new ScopeCache<>(new AgentClient(AgentSettings.from(conf)), AgentSettings.hadoopUser(conf),
          Sdk2Credentials::of, clock);
      this.placeholder = null;
    }
  }

  @Override
  public AwsCredentials resolveCredentials() {
    if (placeholder != null) {
      return placeholder;
    }
    try {
      return cache.get(location).value();
    } catch (AgentException e) {
      throw SdkClientException.create(e.getMessage(), e);
    }
  }

  @Override
  public String toString() {
    return "RoleAgentAwsCredentialsProvider{location=" + location
        + (cache == null ? ", per-request hook: placeholder only" : ", user=" + cache.user()) + "}";
  }
}
