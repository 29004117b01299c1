package io.emrfsroleagent.emrfs;

import com.amazonaws.SdkClientException;
import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.auth.AWSCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import io.emrfsroleagent.agent.AgentClient;
import io.emrfsroleagent.agent.AgentException;
import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.agent.HookWiring;
import io.emrfsroleagent.agent.S3Locations;
import io.emrfsroleagent.agent.ScopeCache;
import java.net.URI;
import java.time.Clock;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * AWS credentials for EMRFS and S3A from the node-local emrfs-role-agent.
 *
 * <p>EMRFS ({@code fs.s3.customAWSCredentialsProvider}) and S3A ({@code fs.s3a.aws.credentials.provider})
 * construct it with the filesystem's URI and the Hadoop configuration. It asks
 * {@code GET <endpoint>/v1/credentials?location=s3://<bucket>/&user=<Hadoop short user name>} with the token
 * file's content in the {@code Authorization} header, so the agent can pick the role mapped to that user and
 * bucket, and sends no {@code access} (the credentials sign every request of the filesystem). The answer becomes
 * {@code BasicSessionCredentials} (or {@code BasicAWSCredentials} when the agent hands out long-term keys without
 * a token).
 *
 * <p>Answers are kept in a {@link ScopeCache}, as the per-request hooks keep theirs: reused as far as the agent's
 * {@code Scope} says (for a bucket root, the bucket; without {@code Scope}, that location only), for the
 * provider's access (none), asked again {@code refresh-before-expiry} (15 minutes) ahead of expiry, one request in
 * flight. If a refresh cannot reach the agent or it fails (5xx, 429), the current credentials keep being served
 * until they expire (as the SDK's own container provider does); if the agent refuses (a reload now denies the
 * bucket), they are dropped and the refusal surfaces; a deny with {@code Scope} is remembered for
 * {@code deny-cache}.
 *
 * <p>Hadoop configuration keys (defaults in brackets):
 * <ul>
 *   <li>{@value #ENDPOINT_KEY} [{@value #DEFAULT_ENDPOINT}]: the agent's base URL</li>
 *   <li>{@value #TOKEN_FILE_KEY} [{@value #DEFAULT_TOKEN_FILE}]: file whose content is sent as the
 *       {@code Authorization} header; empty sends no header (agent with {@code require_token = false})</li>
 *   <li>{@value #CONNECT_TIMEOUT_KEY} [2s] and {@value #READ_TIMEOUT_KEY} [15s]: HTTP timeouts (the agent itself
 *       answers 504 after its {@code request_timeout}, 10s by default)</li>
 *   <li>{@value #REFRESH_BEFORE_EXPIRY_KEY} [15m]: refetch when the credentials expire sooner than this</li>
 *   <li>{@value AgentSettings#DENY_CACHE_KEY} [30s]: how long a deny for a scope is remembered</li>
 *   <li>{@value #SEND_LOCATION_KEY} [true] and {@value #SEND_USER_KEY} [true]: whether to send the bucket and
 *       the Hadoop user</li>
 * </ul>
 *
 * <p>The Hadoop user is the one that creates the provider (the user that creates the filesystem), fixed for
 * the provider's life: a refresh from a thread running as someone else (a pool thread, {@code doAs}) still asks
 * for the filesystem's user.
 *
 * <p><b>With the per-request hook.</b> When the filesystem is S3A with {@link RoleAgentRequestHandler} in
 * {@code fs.s3a.audit.request.handlers} (and {@code fs.s3a.audit.enabled} not false), the handler decides every
 * S3 request for its own location, keyless ones for the bucket root, and this provider never asks the agent:
 * it returns a placeholder ({@link HookWiring#PLACEHOLDER_ACCESS_KEY_ID}, a random secret) that the handler
 * replaces on every request and that S3 would refuse if anything ever signed with it. A job with rules only for
 * prefixes inside a bucket (and {@code fallback = "deny"}) so needs no credentials for the bucket root. Without
 * the hook (EMRFS, or S3A with this provider alone) it asks for the bucket as described above.
 *
 * <p>Thread-safe: concurrent callers share one fetch. Neither exceptions nor {@link #toString()} ever contain
 * the secret key, the session token or the agent token. The HTTP exchange is {@link AgentClient}'s. This class
 * decides per bucket; S3A per request adds {@link RoleAgentRequestHandler}.
 */
public class RoleAgentCredentialsProvider implements AWSCredentialsProvider, Configurable {

  public static final String ENDPOINT_KEY = AgentSettings.ENDPOINT_KEY;
  public static final String TOKEN_FILE_KEY = AgentSettings.TOKEN_FILE_KEY;
  public static final String CONNECT_TIMEOUT_KEY = AgentSettings.CONNECT_TIMEOUT_KEY;
  public static final String READ_TIMEOUT_KEY = AgentSettings.READ_TIMEOUT_KEY;
  public static final String REFRESH_BEFORE_EXPIRY_KEY = AgentSettings.REFRESH_BEFORE_EXPIRY_KEY;
  public static final String SEND_LOCATION_KEY = "emrfs-role-agent.send-location";
  public static final String SEND_USER_KEY = AgentSettings.SEND_USER_KEY;

  public static final String DEFAULT_ENDPOINT = AgentSettings.DEFAULT_ENDPOINT;
  public static final String DEFAULT_TOKEN_FILE = AgentSettings.DEFAULT_TOKEN_FILE;

  private static final Logger LOG = LoggerFactory.getLogger(RoleAgentCredentialsProvider.class);

  private final URI fsUri;
  private final Clock clock;
  /** The Hadoop user that created this provider, or null when it could not be told ({@link #userError}). */
  private final String creationUser;
  private final String userError;

  private volatile Settings settings;
  private volatile Configuration conf;

  /** For tools that instantiate providers reflectively; asks without a location. */
  public RoleAgentCredentialsProvider() {
    this(null, new Configuration(), Clock.systemUTC());
  }

  /** The constructor EMRFS and S3A call: {@code fsUri} is the filesystem's URI (its bucket is the location). */
  public RoleAgentCredentialsProvider(URI fsUri, Configuration conf) {
    this(fsUri, conf, Clock.systemUTC());
  }

  /** With an explicit clock, for tests. */
  RoleAgentCredentialsProvider(URI fsUri, Configuration conf, Clock clock) {
    this.fsUri = fsUri;
    this.clock = clock;
    String user = null;
    String error = null;
    try {
      user = AgentSettings.currentHadoopUser();
    } catch (AgentException e) {
      error = e.getMessage(); // reported when a fetch needs the user (send-user may be off)
    }
    this.creationUser = user;
    this.userError = error;
    setConf(conf == null ? new Configuration() : conf);
  }

  /** Reads the settings anew and starts an empty cache. */
  @Override
  public synchronized void setConf(Configuration conf) {
    this.settings = Settings.from(conf, fsUri, creationUser, clock);
    this.conf = conf;
    if (settings.placeholder != null) {
      LOG.debug("{} runs {} per request: the bucket-level provider hands out a placeholder, never asks the agent",
          fsUri, RoleAgentRequestHandler.class.getName());
    }
  }

  @Override
  public Configuration getConf() {
    return conf;
  }

  @Override
  public AWSCredentials getCredentials() {
    Settings s = settings;
    if (s.placeholder != null) {
      return s.placeholder;
    }
    if (s.sendUser && creationUser == null) {
      throw new SdkClientException("emrfs-role-agent provider could not determine the Hadoop user for a request"
          + " to " + s.client.settings().endpoint() + ": " + userError);
    }
    try {
      return s.cache.get(s.location).value();
    } catch (AgentException e) {
      throw new SdkClientException(e.getMessage(), e.getCause());
    }
  }

  /** Drops the cached credentials: the next {@link #getCredentials()} asks the agent. */
  @Override
  public void refresh() {
    settings.cache.clear();
  }

  @Override
  public String toString() {
    Settings s = settings;
    return "RoleAgentCredentialsProvider{endpoint=" + s.client.settings().endpoint() + ", location=" + s.location
        + ", user=" + (s.sendUser ? creationUser : null) + ", tokenFile=" + s.tokenFile
        + (s.placeholder != null ? ", per-request hook: placeholder only" : ", scopes=" + s.cache.size()) + "}";
  }

  /**
   * The location asked for: the bucket root {@code s3://<bucket>/} of the filesystem ({@code s3a://} and
   * {@code s3n://} are the same to the agent, SPEC §4), or null without a bucket.
   */
  static String locationOf(URI fsUri) {
    if (fsUri == null) {
      return null;
    }
    // getHost() is null for bucket names that are not valid host names (e.g. with underscores).
    String bucket = fsUri.getHost() != null ? fsUri.getHost() : fsUri.getAuthority();
    if (bucket == null || bucket.isEmpty()) {
      return null;
    }
    int at = bucket.lastIndexOf('@');
    if (at >= 0) {
      bucket = bucket.substring(at + 1); // never forward credentials embedded in a URI
    }
    return S3Locations.bucketRoot(bucket);
  }

  /** Configuration as read once per {@link #setConf}, with the cache of the answers asked with it. */
  private static final class Settings {
    final AgentClient client;
    final String location;
    final boolean sendUser;
    final String tokenFile;
    /** Non-null when the per-request handler decides every request of this filesystem. */
    final AWSCredentials placeholder;
    final ScopeCache<AWSCredentials> cache;

    private Settings(AgentClient client, String location, boolean sendUser, String tokenFile,
        AWSCredentials placeholder, ScopeCache<AWSCredentials> cache) {
      this.client = client;
      this.location = location;
      this.sendUser = sendUser;
      this.tokenFile = tokenFile;
      this.placeholder = placeholder;
      this.cache = cache;
    }

    static Settings from(Configuration conf, URI fsUri, String creationUser, Clock clock) {
      AgentClient client = new AgentClient(AgentSettings.from(conf));
      boolean sendUser = conf.getBoolean(SEND_USER_KEY, true);
      return new Settings(
          client,
          conf.getBoolean(SEND_LOCATION_KEY, true) ? locationOf(fsUri) : null,
          sendUser,
          conf.getTrimmed(TOKEN_FILE_KEY, DEFAULT_TOKEN_FILE),
          HookWiring.perRequestHook(conf, fsUri, HookWiring.V1_HANDLERS_KEY, RoleAgentRequestHandler.class.getName())
              ? new BasicAWSCredentials(HookWiring.PLACEHOLDER_ACCESS_KEY_ID, HookWiring.placeholderSecret())
              : null,
          new ScopeCache<>(client, sendUser ? creationUser : null, V1Credentials::credentials, clock));
    }
  }
}
