package io.emrfsroleagent.agent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.UserGroupInformation;

/**
 * How to reach the agent and how long to keep its answers, read once from a Hadoop configuration.
 *
 * <p>Keys (defaults in brackets):
 * <ul>
 *   <li>{@value #ENDPOINT_KEY} [{@value #DEFAULT_ENDPOINT}]</li>
 *   <li>{@value #TOKEN_FILE_KEY} [{@value #DEFAULT_TOKEN_FILE}]: its content is sent as {@code Authorization};
 *       empty sends none. Re-read on every request, so a rotated token is picked up.</li>
 *   <li>{@value #CONNECT_TIMEOUT_KEY} [2s], {@value #READ_TIMEOUT_KEY} [15s]</li>
 *   <li>{@value #REFRESH_BEFORE_EXPIRY_KEY} [15m]: ask again when credentials expire sooner than this</li>
 *   <li>{@value #DENY_CACHE_KEY} [30s]: how long a deny for a scope is remembered</li>
 *   <li>{@value #MAX_SCOPES_KEY} [1000]: scopes kept per bucket</li>
 *   <li>{@value #SEND_USER_KEY} [true]: send the Hadoop user as {@code user=} (see {@link #hadoopUser})</li>
 * </ul>
 */
public final class AgentSettings {
  public static final String ENDPOINT_KEY = "emrfs-role-agent.endpoint";
  public static final String TOKEN_FILE_KEY = "emrfs-role-agent.token-file";
  public static final String CONNECT_TIMEOUT_KEY = "emrfs-role-agent.connect-timeout";
  public static final String READ_TIMEOUT_KEY = "emrfs-role-agent.read-timeout";
  public static final String REFRESH_BEFORE_EXPIRY_KEY = "emrfs-role-agent.refresh-before-expiry";
  public static final String DENY_CACHE_KEY = "emrfs-role-agent.deny-cache";
  public static final String MAX_SCOPES_KEY = "emrfs-role-agent.max-scopes";
  public static final String SEND_USER_KEY = "emrfs-role-agent.send-user";

  public static final String DEFAULT_ENDPOINT = "http://127.0.0.1:9944";
  public static final String DEFAULT_TOKEN_FILE = "/etc/emrfs-role-agent/token";

  final String endpoint;
  final String tokenFile;
  final int connectTimeoutMs;
  final int readTimeoutMs;
  final Duration refreshBeforeExpiry;
  final Duration denyCache;
  final int maxScopes;

  AgentSettings(String endpoint, String tokenFile, int connectTimeoutMs, int readTimeoutMs,
      Duration refreshBeforeExpiry, Duration denyCache, int maxScopes) {
    this.endpoint = endpoint;
    this.tokenFile = tokenFile;
    this.connectTimeoutMs = connectTimeoutMs;
    this.readTimeoutMs = readTimeoutMs;
    this.refreshBeforeExpiry = refreshBeforeExpiry;
    this.denyCache = denyCache;
    this.maxScopes = maxScopes;
  }

  public static AgentSettings from(Configuration conf) {
    String endpoint = conf.getTrimmed(ENDPOINT_KEY, DEFAULT_ENDPOINT);
    while (endpoint.endsWith("/")) {
      endpoint = endpoint.substring(0, endpoint.length() - 1);
    }
    if (!endpoint.startsWith("http://") && !endpoint.startsWith("https://")) {
      throw new IllegalArgumentException(ENDPOINT_KEY + " must be an http:// URL, got " + endpoint);
    }
    String tokenFile = conf.getTrimmed(TOKEN_FILE_KEY, DEFAULT_TOKEN_FILE);
    int maxScopes = conf.getInt(MAX_SCOPES_KEY, 1000);
    if (maxScopes < 1) {
      throw new IllegalArgumentException(MAX_SCOPES_KEY + " must be at least 1, got " + maxScopes);
    }
    return new AgentSettings(
        endpoint,
        tokenFile.isEmpty() ? null : tokenFile,
        millis(conf, CONNECT_TIMEOUT_KEY, 2_000),
        millis(conf, READ_TIMEOUT_KEY, 15_000),
        Duration.ofMillis(conf.getTimeDuration(REFRESH_BEFORE_EXPIRY_KEY, TimeUnit.MINUTES.toMillis(15),
            TimeUnit.MILLISECONDS)),
        Duration.ofMillis(conf.getTimeDuration(DENY_CACHE_KEY, 30_000, TimeUnit.MILLISECONDS)),
        maxScopes);
  }

  /**
   * The Hadoop user to ask for: the current {@code UserGroupInformation}'s short name (in a YARN container the
   * job's user, while the OS user is {@code yarn}); null when {@value #SEND_USER_KEY} is false.
   */
  public static String hadoopUser(Configuration conf) {
    if (!conf.getBoolean(SEND_USER_KEY, true)) {
      return null;
    }
    return currentHadoopUser();
  }

  /** The current {@code UserGroupInformation}'s short name, whatever {@value #SEND_USER_KEY} says. */
  public static String currentHadoopUser() {
    try {
      return UserGroupInformation.getCurrentUser().getShortUserName();
    } catch (IOException e) {
      throw new AgentException("emrfs-role-agent client could not determine the Hadoop user: " + e, 0, null, null,
          e);
    }
  }

  public String endpoint() {
    return endpoint;
  }

  private static int millis(Configuration conf, String key, long defaultMs) {
    long ms = conf.getTimeDuration(key, defaultMs, TimeUnit.MILLISECONDS);
    if (ms < 0 || ms > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(key + " out of range: " + conf.get(key));
    }
    return (int) ms;
  }

  /** The token without a trailing line break, or null when no token file is set. */
  String readToken() {
    if (tokenFile == null) {
      return null;
    }
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(Paths.get(tokenFile));
    } catch (NoSuchFileException e) {
      throw new AgentException("emrfs-role-agent token file " + tokenFile + " does not exist (set "
          + TOKEN_FILE_KEY + ", or empty it if the agent needs no token)", 0, null, null, null);
    } catch (IOException e) {
      // The exception names the file and the reason, never the content.
      throw new AgentException("emrfs-role-agent token file " + tokenFile + " cannot be read: " + e, 0, null, null,
          e);
    }
    String token = new String(bytes, StandardCharsets.UTF_8);
    int end = token.length();
    while (end > 0 && (token.charAt(end - 1) == '\n' || token.charAt(end - 1) == '\r')) {
      end--;
    }
    return token.substring(0, end);
  }

  @Override
  public String toString() {
    return "endpoint=" + endpoint + ", tokenFile=" + tokenFile;
  }
}
