package io.emrfsroleagent.agent;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UnsupportedEncodingException;
import java.net.HttpURLConnection;
import java.net.URL;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.Map;

/**
 * One request to the agent: {@code GET <endpoint>/v1/credentials?location=..&user=..&access=..} with the token,
 * and its answer as {@link Answer} or an {@link AgentException}. No caching here (see {@link ScopeCache}).
 * Never puts the answer's body into an exception: it carries the secret key.
 *
 * <p>Keys are bytes (SPEC §5): the location is {@code s3://bucket/<key exactly as S3 has it>}, percent-encoded
 * once as a query value ({@code %} as {@code %25}, {@code +} as {@code %2B}, a space as {@code %20}, non-ASCII
 * as UTF-8 bytes); the agent decodes it once. {@code Scope} comes back in the same literal form and is compared
 * literally.
 */
public final class AgentClient {
  private static final int MAX_BODY_BYTES = 64 * 1024;

  private final AgentSettings settings;

  public AgentClient(AgentSettings settings) {
    this.settings = settings;
  }

  public AgentSettings settings() {
    return settings;
  }

  /** A 200 answer: the credentials and how far they hold ({@code Scope}; null when the agent sent none). */
  public static final class Answer {
    public final AgentCredentials credentials;
    public final String scope;

    Answer(AgentCredentials credentials, String scope) {
      this.credentials = credentials;
      this.scope = scope;
    }
  }

  /** {@link #fetch(String, String, Access, Instant)} without {@code access}, as the bucket-level providers ask. */
  public Answer fetch(String location, String user, Instant now) {
    return fetch(location, user, null, now);
  }

  /**
   * Asks for {@code location} (a normalised S3 URI with the literal key, or null) on behalf of {@code user}
   * (or null: the caller's own OS user), for {@code access} (or null: any). {@code now} only checks that the
   * answer has not expired already.
   */
  public Answer fetch(String location, String user, Access access, Instant now) {
    String who = "credentials"
        + (location == null ? "" : (access == null ? " for " : " to " + access.wire() + " ") + location)
        + (user == null ? "" : " (user " + user + ")");
    String where = "emrfs-role-agent at " + settings.endpoint;
    URL url = url(location, user, access);
    HttpURLConnection http = null;
    int status;
    String body;
    try {
      http = (HttpURLConnection) url.openConnection();
      http.setRequestMethod("GET");
      http.setInstanceFollowRedirects(false);
      http.setUseCaches(false);
      http.setConnectTimeout(settings.connectTimeoutMs);
      http.setReadTimeout(settings.readTimeoutMs);
      http.setRequestProperty("Accept", "application/json");
      String token = settings.readToken();
      if (token != null) {
        http.setRequestProperty("Authorization", token);
      }
      status = http.getResponseCode();
      InputStream in = status >= 400 ? http.getErrorStream() : http.getInputStream();
      body = in == null ? "" : readBody(in);
    } catch (IOException e) {
      throw new AgentException(where + " could not be reached for " + who + " (set " + AgentSettings.ENDPOINT_KEY
          + " if it listens elsewhere): " + e, 0, null, null, e);
    } finally {
      if (http != null) {
        http.disconnect();
      }
    }

    if (status != 200) {
      String code = null;
      String message = null;
      String scope = null;
      try {
        Map<String, String> error = Json.stringMembers(body);
        code = error.get("code");
        message = error.get("message");
        scope = trusted(S3Locations.normalise(error.get("Scope")), location);
      } catch (IllegalArgumentException notJson) {
        // An error body that is not the agent's JSON: report the status alone.
      }
      throw new AgentException(where + " refused " + who + ": HTTP " + status + (code == null ? "" : " " + code)
          + (message == null ? "" : ": " + message), status, code, scope, null);
    }

    Map<String, String> json;
    try {
      json = Json.stringMembers(body);
    } catch (IllegalArgumentException e) {
      throw new AgentException(where + " answered " + who + " with a body that is not JSON", status, null, null,
          null);
    }
    String accessKeyId = required(json, "AccessKeyId", where, who);
    String secretAccessKey = required(json, "SecretAccessKey", where, who);
    String token = json.get("Token");
    String expirationText = required(json, "Expiration", where, who);
    Instant expiration;
    try {
      expiration = Instant.parse(expirationText);
    } catch (DateTimeParseException e) {
      throw new AgentException(where + " answered " + who + " with an invalid Expiration: " + expirationText,
          status, null, null, null);
    }
    if (!now.isBefore(expiration)) {
      throw new AgentException(where + " answered " + who + " with credentials that expired at " + expirationText,
          status, null, null, null);
    }
    String scope = trusted(S3Locations.normalise(json.get("Scope")), location);
    AgentCredentials credentials = new AgentCredentials(accessKeyId, secretAccessKey,
        token == null || token.isEmpty() ? null : token, expiration, json.get("RoleArn"));
    return new Answer(credentials, scope);
  }

  /** A scope that does not contain the location asked for holds for nothing but that location: null. */
  private static String trusted(String scope, String location) {
    if (scope == null || location == null || !location.startsWith(scope)) {
      return null;
    }
    return scope;
  }

  private URL url(String location, String user, Access access) {
    StringBuilder url = new StringBuilder(settings.endpoint).append("/v1/credentials");
    char sep = '?';
    if (location != null) {
      url.append(sep).append("location=").append(encode(location));
      sep = '&';
    }
    if (user != null) {
      url.append(sep).append("user=").append(encode(user));
      sep = '&';
    }
    if (access != null) {
      url.append(sep).append("access=").append(access.wire());
    }
    try {
      return new URL(url.toString());
    } catch (IOException e) {
      throw new AgentException("invalid " + AgentSettings.ENDPOINT_KEY + " " + settings.endpoint + ": " + e, 0,
          null, null, e);
    }
  }

  private static String required(Map<String, String> json, String field, String where, String who) {
    String value = json.get(field);
    if (value == null || value.isEmpty()) {
      throw new AgentException(where + " answered " + who + " without " + field, 200, null, null, null);
    }
    return value;
  }

  /**
   * A query value, percent-encoded once: every byte but {@code A-Z a-z 0-9 . - * _} as {@code %XX} of its UTF-8
   * encoding. URLEncoder writes a space as {@code +}; that becomes {@code %20}, which every query parser reads
   * as a space ({@code +} in the value itself is {@code %2B} by then).
   */
  public static String encode(String value) {
    try {
      return URLEncoder.encode(value, "UTF-8").replace("+", "%20");
    } catch (UnsupportedEncodingException e) {
      throw new AssertionError(e);
    }
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
}
