package io.emrfsroleagent.agent;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;

/**
 * The settings of the JVM-wide hooks (emrfs-role-agent-hooks.jar), which no Hadoop configuration reaches: for
 * each of the agent's endpoint and token file, the first of
 * <ol>
 *   <li>the Java system property ({@value #ENDPOINT_PROPERTY}, {@value #TOKEN_FILE_PROPERTY}),</li>
 *   <li>the environment ({@value #ENDPOINT_ENV}, {@value #TOKEN_FILE_ENV}),</li>
 *   <li>the client properties file ({@value #DEFAULT_FILE}, which the bootstrap writes; another with the system
 *       property {@value #FILE_PROPERTY}): Java properties with the keys {@code endpoint} and
 *       {@code token-file}; other keys are left to other clients,</li>
 *   <li>the defaults {@value AgentSettings#DEFAULT_ENDPOINT} and {@value AgentSettings#DEFAULT_TOKEN_FILE}.</li>
 * </ol>
 * An empty token file setting sends no token (an agent with {@code require_token = false}). Timeouts and cache
 * settings are the defaults of {@link AgentSettings}. {@link #resolve} is pure; {@link #load} reads the process's
 * properties, environment and the file.
 */
public final class ClientProperties {
  public static final String ENDPOINT_PROPERTY = AgentSettings.ENDPOINT_KEY;
  public static final String TOKEN_FILE_PROPERTY = AgentSettings.TOKEN_FILE_KEY;
  public static final String FILE_PROPERTY = "emrfs-role-agent.client-properties";
  public static final String ENDPOINT_ENV = "EMRFS_ROLE_AGENT_ENDPOINT";
  public static final String TOKEN_FILE_ENV = "EMRFS_ROLE_AGENT_TOKEN_FILE";
  public static final String DEFAULT_FILE = "/etc/emrfs-role-agent/client.properties";
  static final String FILE_ENDPOINT_KEY = "endpoint";
  static final String FILE_TOKEN_FILE_KEY = "token-file";

  private ClientProperties() {}

  /** The settings and, for messages, where each came from. */
  public static final class Resolved {
    public final AgentSettings settings;
    /** e.g. "endpoint from /etc/emrfs-role-agent/client.properties, token file from the default". */
    public final String origin;

    Resolved(AgentSettings settings, String origin) {
      this.settings = settings;
      this.origin = origin;
    }
  }

  /** Reads a properties file; null when it does not exist. Any other failure is an IOException. */
  public interface FileReader {
    Properties read(Path file) throws IOException;
  }

  /** From this process: its system properties, its environment, and the file they name (or the default). */
  public static Resolved load() {
    return resolve(System.getProperties(), System.getenv(), ClientProperties::readFile);
  }

  /**
   * The settings from {@code system} (Java system properties), {@code env} and the properties file, read by
   * {@code files}. Throws {@link IllegalArgumentException} naming the source of a setting that is invalid, or
   * the file when it exists but cannot be read.
   */
  public static Resolved resolve(Properties system, Map<String, String> env, FileReader files) {
    String fileName = trimmed(system.getProperty(FILE_PROPERTY));
    Path file = Paths.get(fileName == null ? DEFAULT_FILE : fileName);
    Properties fromFile;
    try {
      fromFile = files.read(file);
    } catch (IOException e) {
      // The message names the file and the reason; never its content.
      throw new IllegalArgumentException("emrfs-role-agent client properties " + file + " cannot be read: " + e, e);
    }
    String[] endpoint = pick(system, ENDPOINT_PROPERTY, env, ENDPOINT_ENV, fromFile, FILE_ENDPOINT_KEY, file,
        AgentSettings.DEFAULT_ENDPOINT);
    String[] tokenFile = pick(system, TOKEN_FILE_PROPERTY, env, TOKEN_FILE_ENV, fromFile, FILE_TOKEN_FILE_KEY, file,
        AgentSettings.DEFAULT_TOKEN_FILE);
    String url = endpoint[0];
    while (url.endsWith("/")) {
      url = url.substring(0, url.length() - 1);
    }
    if (!url.startsWith("http://") && !url.startsWith("https://")) {
      throw new IllegalArgumentException("emrfs-role-agent endpoint from " + endpoint[1]
          + " must be an http:// URL, got " + endpoint[0]);
    }
    AgentSettings settings = new AgentSettings(url, tokenFile[0].isEmpty() ? null : tokenFile[0], 2_000, 15_000,
        Duration.ofMinutes(15), Duration.ofSeconds(30), 1000);
    return new Resolved(settings, "endpoint from " + endpoint[1] + ", token file from " + tokenFile[1]);
  }

  /** {value, where it came from}. */
  private static String[] pick(Properties system, String property, Map<String, String> env, String variable,
      Properties file, String fileKey, Path path, String fallback) {
    String v = trimmed(system.getProperty(property));
    if (v != null) {
      return new String[] {v, "system property " + property};
    }
    v = trimmed(env.get(variable));
    if (v != null) {
      return new String[] {v, "environment variable " + variable};
    }
    v = file == null ? null : trimmed(file.getProperty(fileKey));
    if (v != null) {
      return new String[] {v, path + " (" + fileKey + ")"};
    }
    return new String[] {fallback, "the default (" + (file == null ? path + " does not exist" : "not set in " + path)
        + ")"};
  }

  /** Null for unset; "" stays "" (an empty token file setting means: no token). */
  private static String trimmed(String s) {
    return s == null ? null : s.trim();
  }

  static Properties readFile(Path file) throws IOException {
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(file)) {
      p.load(in);
    } catch (NoSuchFileException e) {
      return null;
    }
    return p;
  }
}
