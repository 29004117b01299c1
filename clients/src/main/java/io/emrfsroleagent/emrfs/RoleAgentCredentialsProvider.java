package io.emrfsroleagent.emrfs;

import com.amazonaws.SdkClientException;
import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.auth.AWSCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.auth.BasicSessionCredentials;
import com.amazonaws.util.json.Jackson;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UnsupportedEncodingException;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Paths;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.UserGroupInformation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * AWS credentials for EMRFS and S3A from the node-local emrfs-role-agent.
 *
 * <p>EMRFS ({@code fs.s3.customAWSCredentialsProvider}) and S3A ({@code fs.s3a.aws.credentials.provider})
 * construct it with the filesystem's URI and the Hadoop configuration. For each fetch it asks
 * {@code GET <endpoint>/v1/credentials?location=<scheme>://<bucket>/&user=<Hadoop short user name>} with the
 * token file's content in the {@code Authorization} header, so the agent can pick the role mapped to that user
 * and bucket. The answer becomes {@code BasicSessionCredentials} (or {@code BasicAWSCredentials} when the agent
 * hands out long-term keys without a token). Credentials are cached and refetched once they are within {@code refresh-before-expiry}
 * (15 minutes) of expiry; if a refetch fails while the cached credentials have not expired yet, those keep
 * being served (as the SDK's own container provider does).
 *
 * <p>Hadoop configuration keys (defaults in brackets):
 * <ul>
 *   <li>{@value #ENDPOINT_KEY} [{@value #DEFAULT_ENDPOINT}]: the agent's base URL</li>
 *   <li>{@value #TOKEN_FILE_KEY} [{@value #DEFAULT_TOKEN_FILE}]: file whose content is sent as the
 *       {@code Authorization} header; empty sends no header (agent with {@code require_token = false})</li>
 *   <li>{@value #CONNECT_TIMEOUT_KEY} [2s] and {@value #READ_TIMEOUT_KEY} [15s]: HTTP timeouts (the agent itself
 *       answers 504 after its {@code request_timeout}, 10s by default)</li>
 *   <li>{@value #REFRESH_BEFORE_EXPIRY_KEY} [15m]: refetch when the credentials expire sooner than this</li>
 *   <li>{@value #SEND_LOCATION_KEY} [true] and {@value #SEND_USER_KEY} [true]: whether to send the bucket and
 *       the Hadoop user</li>
 * </ul>
 *
 * <p>Thread-safe: concurrent callers share one fetch. Neither exceptions nor {@link #toString()} ever contain
 * the secret key, the session token or the agent token.
 */
public class RoleAgentCredentialsProvider implements AWSCredentialsProvider, Configurable {

  public static final String ENDPOINT_KEY = "emrfs-role-agent.endpoint";
  public static final String TOKEN_FILE_KEY = "emrfs-role-agent.token-file";
  public static final String CONNECT_TIMEOUT_KEY = "emrfs-role-agent.connect-timeout";
  public static final String READ_TIMEOUT_KEY = "emrfs-role-agent.read-timeout";
  public static final String REFRESH_BEFORE_EXPIRY_KEY = "emrfs-role-agent.refresh-before-expiry";
  public static final String SEND_LOCATION_KEY = "emrfs-role-agent.send-location";
  public static final String SEND_USER_KEY = "emrfs-role-agent.send-user";

  public static final String DEFAULT_ENDPOINT = "http://127.0.0.1:9944";
  public static final String DEFAULT_TOKEN_FILE = "/etc/emrfs-role-agent/token";
  static final long DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
  static final long DEFAULT_READ_TIMEOUT_MS = 15_000;
  static final long DEFAULT_REFRESH_BEFORE_EXPIRY_MS = TimeUnit.MINUTES.toMillis(15);

  /**
   * Credentials that arrive already inside the refresh window (served stale by the agent during an STS outage)
   * are kept at least this long, so that every S3 call does not turn into an agent request.
   */
  static final Duration MIN_CACHE_TIME = Duration.ofMinutes(1);

  private static final Logger LOG = LoggerFactory.getLogger(RoleAgentCredentialsProvider.class);
  private static final int MAX_BODY_BYTES = 64 * 1024;

  private final URI fsUri;
  private final Clock clock;
  private final Object fetchLock = new Object();

  private volatile Settings settings;
  private volatile Configuration conf;
  private volatile Cached cached;

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
    setConf(conf == null ? new Configuration() : conf);
  }

  @Override
  public void setConf(Configuration conf) {
    synchronized (fetchLock) {
      this.conf = conf;
      this.settings = Settings.from(conf, fsUri);
      this.cached = null;
    }
  }

  @Override
  public Configuration getConf() {
    return conf;
  }

  @Override
  public AWSCredentials getCredentials() {
    Cached current = cached;
    Instant now = clock.instant();
    if (current != null && now.isBefore(current.refreshAt)) {
      return current.credentials;
    }
    synchronized (fetchLock) {
      current = cached;
      now = clock.instant();
      if (current != null && now.isBefore(current.refreshAt)) {
        return current.credentials; // another thread fetched while we waited
      }
      try {
        Cached fresh = fetch(settings, now);
        cached = fresh;
        return fresh.credentials;
      } catch (SdkClientException e) {
        if (current != null && now.isBefore(current.expiration)) {
          LOG.warn("Refreshing credentials failed; serving cached credentials that expire at {}: {}",
              current.expiration, e.getMessage());
          return current.credentials;
        }
        throw e;
      }
    }
  }

  /** Drops the cached credentials: the next {@link #getCredentials()} asks the agent. */
  @Override
  public void refresh() {
    synchronized (fetchLock) {
      cached = null;
    }
  }

  @Override
  public String toString() {
    Settings s = settings;
    return "RoleAgentCredentialsProvider{endpoint=" + s.endpoint + ", location=" + s.location
        + ", tokenFile=" + s.tokenFile + "}";
  }

  private Cached fetch(Settings s, Instant now) {
    String user = s.sendUser ? currentUser(s) : null;
    URL url = s.requestUrl(user);
    String who = "credentials" + (s.location == null ? "" : " for " + s.location)
        + (user == null ? "" : " (user " + user + ")");
    HttpURLConnection http = null;
    int status;
    String body;
    try {
      http = (HttpURLConnection) url.openConnection();
      http.setRequestMethod("GET");
      http.setInstanceFollowRedirects(false);
      http.setUseCaches(false);
      http.setConnectTimeout(s.connectTimeoutMs);
      http.setReadTimeout(s.readTimeoutMs);
      http.setRequestProperty("Accept", "application/json");
      String token = s.readToken();
      if (token != null) {
        http.setRequestProperty("Authorization", token);
      }
      status = http.getResponseCode();
      InputStream in = status >= 400 ? http.getErrorStream() : http.getInputStream();
      body = in == null ? "" : readBody(in);
    } catch (IOException e) {
      throw new SdkClientException("emrfs-role-agent at " + s.endpoint + " could not be reached for " + who
          + " (set " + ENDPOINT_KEY + " if it listens elsewhere): " + e, e);
    } finally {
      if (http != null) {
        http.disconnect();
      }
    }

    if (status != 200) {
      String code = null;
      String message = null;
      try {
        Map<?, ?> error = Jackson.fromJsonString(body, Map.class);
        if (error != null) {
          code = stringOrNull(error.get("code"));
          message = stringOrNull(error.get("message"));
        }
      } catch (RuntimeException notJson) {
        // An error body that is not the agent's JSON: report the status alone.
      }
      throw new SdkClientException("emrfs-role-agent at " + s.endpoint + " refused " + who + ": HTTP " + status
          + (code == null ? "" : " " + code) + (message == null ? "" : ": " + message));
    }

    Map<?, ?> json;
    try {
      json = Jackson.fromJsonString(body, Map.class);
    } catch (RuntimeException e) {
      // Never include the body: it carries the secret key.
      throw new SdkClientException("emrfs-role-agent at " + s.endpoint + " answered " + who
          + " with a body that is not JSON");
    }
    String accessKeyId = required(json, "AccessKeyId", s, who);
    String secretAccessKey = required(json, "SecretAccessKey", s, who);
    // Long-term keys (an instance-profile fallback fed by static keys) come without a token.
    String token = stringOrNull(json.get("Token"));
    String expirationText = required(json, "Expiration", s, who);
    Instant expiration;
    try {
      expiration = Instant.parse(expirationText);
    } catch (DateTimeParseException e) {
      throw new SdkClientException("emrfs-role-agent at " + s.endpoint + " answered " + who
          + " with an invalid Expiration: " + expirationText);
    }
    if (!now.isBefore(expiration)) {
      throw new SdkClientException("emrfs-role-agent at " + s.endpoint + " answered " + who
          + " with credentials that expired at " + expirationText);
    }
    LOG.debug("Fetched credentials {} for {} from {}, expiring at {}", accessKeyId, s.location, s.endpoint,
        expirationText);
    AWSCredentials credentials = token == null || token.isEmpty()
        ? new BasicAWSCredentials(accessKeyId, secretAccessKey)
        : new BasicSessionCredentials(accessKeyId, secretAccessKey, token);
    return new Cached(credentials, expiration, refreshAt(now, expiration, s.refreshBeforeExpiry));
  }

  /** When to fetch again: {@code refreshBefore} ahead of expiry, but not sooner than {@link #MIN_CACHE_TIME}. */
  static Instant refreshAt(Instant now, Instant expiration, Duration refreshBefore) {
    Instant ahead = expiration.minus(refreshBefore);
    Instant earliest = now.plus(MIN_CACHE_TIME);
    if (ahead.isAfter(earliest)) {
      return ahead;
    }
    return earliest.isBefore(expiration) ? earliest : expiration;
  }

  private static String currentUser(Settings s) {
    try {
      return UserGroupInformation.getCurrentUser().getShortUserName();
    } catch (IOException e) {
      throw new SdkClientException("emrfs-role-agent provider could not determine the Hadoop user for a request"
          + " to " + s.endpoint + ": " + e, e);
    }
  }

  private static String required(Map<?, ?> json, String field, Settings s, String who) {
    String value = json == null ? null : stringOrNull(json.get(field));
    if (value == null || value.isEmpty()) {
      throw new SdkClientException("emrfs-role-agent at " + s.endpoint + " answered " + who
          + " without " + field);
    }
    return value;
  }

  private static String stringOrNull(Object value) {
    return value instanceof String ? (String) value : value == null ? null : String.valueOf(value);
  }

  private static String readBody(InputStream in) throws IOException {
    try (InputStream stream = in) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      byte[] buffer = new byte[4096];
      int n;
      while ((n = stream.read(buffer)) != -1) {
        if (out.size() + n > MAX_BODY_BYTES) {
          throw new IOException("response body larger than " + MAX_BODY_BYTES + " bytes");
        }
        out.write(buffer, 0, n);
      }
      return new String(out.toByteArray(), StandardCharsets.UTF_8);
    }
  }

  /** The bucket URI sent as {@code location}: the filesystem's scheme and bucket, or null without one. */
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
    String scheme = fsUri.getScheme() == null ? "s3" : fsUri.getScheme().toLowerCase(Locale.ROOT);
    if (!scheme.equals("s3") && !scheme.equals("s3a") && !scheme.equals("s3n")) {
      scheme = "s3";
    }
    return scheme + "://" + bucket + "/";
  }

  /** Configuration as read once per {@link #setConf}. */
  private static final class Settings {
    final String endpoint;
    final String tokenFile;
    final int connectTimeoutMs;
    final int readTimeoutMs;
    final Duration refreshBeforeExpiry;
    final String location;
    final boolean sendUser;

    private Settings(String endpoint, String tokenFile, int connectTimeoutMs, int readTimeoutMs,
        Duration refreshBeforeExpiry, String location, boolean sendUser) {
      this.endpoint = endpoint;
      this.tokenFile = tokenFile;
      this.connectTimeoutMs = connectTimeoutMs;
      this.readTimeoutMs = readTimeoutMs;
      this.refreshBeforeExpiry = refreshBeforeExpiry;
      this.location = location;
      this.sendUser = sendUser;
    }

    static Settings from(Configuration conf, URI fsUri) {
      String endpoint = conf.getTrimmed(ENDPOINT_KEY, DEFAULT_ENDPOINT);
      while (endpoint.endsWith("/")) {
        endpoint = endpoint.substring(0, endpoint.length() - 1);
      }
      if (!endpoint.startsWith("http://") && !endpoint.startsWith("https://")) {
        throw new IllegalArgumentException(ENDPOINT_KEY + " must be an http:// URL, got " + endpoint);
      }
      String tokenFile = conf.getTrimmed(TOKEN_FILE_KEY, DEFAULT_TOKEN_FILE);
      return new Settings(
          endpoint,
          tokenFile.isEmpty() ? null : tokenFile,
          millis(conf, CONNECT_TIMEOUT_KEY, DEFAULT_CONNECT_TIMEOUT_MS),
          millis(conf, READ_TIMEOUT_KEY, DEFAULT_READ_TIMEOUT_MS),
          Duration.ofMillis(conf.getTimeDuration(REFRESH_BEFORE_EXPIRY_KEY, DEFAULT_REFRESH_BEFORE_EXPIRY_MS,
              TimeUnit.MILLISECONDS)),
          conf.getBoolean(SEND_LOCATION_KEY, true) ? locationOf(fsUri) : null,
          conf.getBoolean(SEND_USER_KEY, true));
    }

    private static int millis(Configuration conf, String key, long defaultMs) {
      long ms = conf.getTimeDuration(key, defaultMs, TimeUnit.MILLISECONDS);
      if (ms < 0 || ms > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(key + " out of range: " + conf.get(key));
      }
      return (int) ms;
    }

    URL requestUrl(String user) {
      StringBuilder url = new StringBuilder(endpoint).append("/v1/credentials");
      char sep = '?';
      if (location != null) {
        url.append(sep).append("location=").append(encode(location));
        sep = '&';
      }
      if (user != null) {
        url.append(sep).append("user=").append(encode(user));
      }
      try {
        return new URL(url.toString());
      } catch (IOException e) {
        throw new SdkClientException("invalid " + ENDPOINT_KEY + " " + endpoint + ": " + e, e);
      }
    }

    /** The token, re-read on every fetch so that a rotated token file is picked up; null when none is set. */
    String readToken() {
      if (tokenFile == null) {
        return null;
      }
      byte[] bytes;
      try {
        bytes = Files.readAllBytes(Paths.get(tokenFile));
      } catch (NoSuchFileException e) {
        throw new SdkClientException("emrfs-role-agent token file " + tokenFile + " does not exist (set "
            + TOKEN_FILE_KEY + ", or empty it if the agent needs no token)");
      } catch (IOException e) {
        // The exception names the file and the reason (e.g. AccessDeniedException), never the content.
        throw new SdkClientException("emrfs-role-agent token file " + tokenFile + " cannot be read: " + e, e);
      }
      String token = new String(bytes, StandardCharsets.UTF_8);
      // A header cannot carry a line break; tolerate a trailing newline left by an editor.
      int end = token.length();
      while (end > 0 && (token.charAt(end - 1) == '\n' || token.charAt(end - 1) == '\r')) {
        end--;
      }
      return token.substring(0, end);
    }

    private static String encode(String value) {
      try {
        return URLEncoder.encode(value, "UTF-8");
      } catch (UnsupportedEncodingException e) {
        throw new AssertionError(e);
      }
    }
  }

  private static final class Cached {
    final AWSCredentials credentials;
    final Instant expiration;
    final Instant refreshAt;

    Cached(AWSCredentials credentials, Instant expiration, Instant refreshAt) {
      this.credentials = credentials;
      this.expiration = expiration;
      this.refreshAt = refreshAt;
    }
  }
}
