package io.emrfsroleagent.agent;

import static io.emrfsroleagent.agent.AgentAnswers.SECRET;
import static io.emrfsroleagent.agent.AgentAnswers.SESSION_TOKEN;
import static io.emrfsroleagent.agent.AgentAnswers.T0;
import static io.emrfsroleagent.agent.AgentAnswers.creds;
import static io.emrfsroleagent.agent.AgentAnswers.expectAgentException;
import static io.emrfsroleagent.agent.AgentAnswers.scopeCache;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * One request to the agent ({@link AgentClient}): the location encoded once, the answer parsed, errors sorted by
 * what the caller does next, and nothing secret in a message.
 */
final class AgentClientTest {
  static final String AGENT_TOKEN = "agent-token-Zq81";

  static AgentClient client(String endpoint, String tokenFile) {
    Configuration conf = new Configuration(false);
    conf.set(AgentSettings.ENDPOINT_KEY, endpoint);
    conf.set(AgentSettings.TOKEN_FILE_KEY, tokenFile);
    return new AgentClient(AgentSettings.from(conf));
  }

  static AgentClient client(FakeAgent agent) {
    return client(agent.endpoint(), "");
  }

  /** The exception {@code fetch} throws; its message and cause never carry a secret. */
  static AgentException refusal(AgentClient client, String location) {
    AgentException e = expectAgentException(() -> client.fetch(location, "analyst", Access.READ, T0));
    assertFalse(e.getMessage().contains(SECRET) || e.getMessage().contains(SESSION_TOKEN)
        || e.getMessage().contains(AGENT_TOKEN), "a secret in: " + e.getMessage());
    return e;
  }

  @Test
  @DisplayName("an answer: the credentials, the role and the Scope, normalised to s3://")
  void parsesAnAnswer() throws Exception {
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAOK", T0.plus(Duration.ofHours(1)), "s3a://b/teamA/"))) {
      AgentClient.Answer a = client(agent).fetch("s3://b/teamA/x", "analyst", Access.WRITE, T0);
      assertEquals("s3://b/teamA/", a.scope, "Scope");
      assertEquals("ASIAOK", a.credentials.accessKeyId(), "key id");
      assertEquals(SECRET, a.credentials.secretAccessKey(), "secret");
      assertEquals(SESSION_TOKEN, a.credentials.sessionToken(), "token");
      assertEquals(T0.plus(Duration.ofHours(1)), a.credentials.expiration(), "expiration");
      assertEquals("arn:aws:iam::222222222222:role/ASIAOK", a.credentials.roleArn(), "role");
      assertEquals("location=s3%3A%2F%2Fb%2FteamA%2Fx&user=analyst&access=write", agent.lastRawQuery, "query");
      assertEquals("/v1/credentials", agent.lastPath, "path");
      String shown = a.credentials.toString() + a.credentials.describe();
      assertFalse(shown.contains(SECRET) || shown.contains(SESSION_TOKEN), "toString shows a secret: " + shown);
    }
  }

  @Test
  @DisplayName("the token file's content is the Authorization header, without its line break; empty sends none")
  void token() throws Exception {
    Path file = Files.createTempFile("emrfs-role-agent-token", "");
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAOK", T0.plus(Duration.ofHours(1)), null))) {
      Files.write(file, (AGENT_TOKEN + "\r\n").getBytes(StandardCharsets.UTF_8));
      client(agent.endpoint(), file.toString()).fetch("s3://b/x", null, null, T0);
      assertEquals(AGENT_TOKEN, agent.lastAuthorization, "Authorization");
      assertEquals("location=s3%3A%2F%2Fb%2Fx", agent.lastRawQuery, "no user, no access");
      client(agent).fetch(null, null, null, T0);
      assertNull(agent.lastAuthorization, "no token file: no header");
      assertNull(agent.lastRawQuery, "no location: no query");
      Files.delete(file);
      AgentException e = refusal(client(agent.endpoint(), file.toString()), "s3://b/x");
      assertTrue(e.getMessage().contains(file + " does not exist"), e.getMessage());
      assertEquals(2, agent.requests.get(), "no request without the token");
    } finally {
      Files.deleteIfExists(file);
    }
  }

  @Test
  @DisplayName("a 200 that is not usable: not JSON, a field missing, a bad or past Expiration, never echoed")
  void unusableAnswers() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      AgentClient client = client(agent);
      agent.reply(200, "AccessKeyId=ASIA SecretAccessKey=" + SECRET);
      assertTrue(refusal(client, "s3://b/x").getMessage().endsWith("with a body that is not JSON"), "not JSON");
      agent.reply(200, "{\"AccessKeyId\":\"ASIAX\",\"Token\":\"" + SESSION_TOKEN + "\",\"Expiration\":\""
          + T0.plus(Duration.ofHours(1)) + "\"}");
      assertTrue(refusal(client, "s3://b/x").getMessage().endsWith("without SecretAccessKey"), "missing field");
      agent.reply(200, "{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"" + SECRET
          + "\",\"Expiration\":\"soon\"}");
      assertTrue(refusal(client, "s3://b/x").getMessage().endsWith("with an invalid Expiration: soon"), "bad time");
      agent.reply(200, "{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"" + SECRET + "\",\"Expiration\":\""
          + T0 + "\"}");
      AgentException expired = refusal(client, "s3://b/x");
      assertTrue(expired.getMessage().endsWith("with credentials that expired at " + T0), expired.getMessage());
      assertEquals(AgentException.Kind.UNAVAILABLE, expired.kind(), "retry later");
      StringBuilder big = new StringBuilder("{\"AccessKeyId\":\"");
      while (big.length() <= 64 * 1024) {
        big.append("AAAAAAAAAAAAAAAA");
      }
      agent.reply(200, big.append("\"}").toString());
      AgentException tooBig = refusal(client, "s3://b/x");
      assertTrue(tooBig.getMessage().contains("response body larger than 65536 bytes"), tooBig.getMessage());
    }
  }

  @Test
  @DisplayName("a refusal: endpoint, what was asked, status, code, message and the Scope it holds for")
  void refusals() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      AgentClient client = client(agent);
      agent.reply(403, "{\"code\":\"AccessDenied\",\"message\":\"denied by rule secret (deny)\","
          + "\"Scope\":\"s3n://b/secret/\"}");
      AgentException denied = refusal(client, "s3://b/secret/x");
      assertEquals("emrfs-role-agent at " + agent.endpoint() + " refused credentials to read s3://b/secret/x (user"
          + " analyst): HTTP 403 AccessDenied: denied by rule secret (deny)", denied.getMessage(), "message");
      assertEquals(403, denied.status(), "status");
      assertEquals("AccessDenied", denied.code(), "code");
      assertEquals("s3://b/secret/", denied.scope(), "Scope, normalised");
      assertTrue(denied.isDenial(), "a deny for a scope");
      assertNull(refusal(client, "s3://b/other/x").scope(), "a Scope that does not contain the location");
      agent.reply(502, "<html>bad gateway</html>");
      AgentException gateway = refusal(client, "s3://b/x");
      assertTrue(gateway.getMessage().endsWith("): HTTP 502"), gateway.getMessage());
      assertEquals(AgentException.Kind.UNAVAILABLE, gateway.kind(), "retry later");
    }
  }

  @Test
  @DisplayName("an agent that cannot be reached: the endpoint, the setting to change, the cause")
  void unreachable() throws Exception {
    FakeAgent gone = new FakeAgent();
    gone.close(); // nothing listens there any more
    AgentException e = refusal(client(gone), "s3://b/x");
    assertTrue(e.getMessage().startsWith("emrfs-role-agent at " + gone.endpoint() + " could not be reached for"
        + " credentials to read s3://b/x (user analyst) (set emrfs-role-agent.endpoint if it listens elsewhere):"),
        e.getMessage());
    assertTrue(e.getMessage().contains("Connection refused"), e.getMessage());
    assertEquals(0, e.status(), "no answer");
    assertEquals(AgentException.Kind.UNAVAILABLE, e.kind(), "retry later");
  }

  @Test
  @DisplayName("keys are bytes: each location is encoded once and arrives literally")
  void keysAreBytes() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    String[] keys = {"x%2Fy/secret/f", "100%off.csv", "a%25b", "a b+c", "caf\u00e9/r\u00e9sum\u00e9.txt",
        "t/dt=2026-01-01 00%3A00/part-0", "q?x=1&y=#z", "tab\tand\u00a0nbsp"};
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAK", exp, null))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      for (String k : keys) {
        cache.get("s3://lake/" + k, Access.READ);
      }
      for (int i = 0; i < keys.length; i++) {
        assertEquals("s3://lake/" + keys[i], agent.locations.get(i), "the location the agent decoded");
      }
      String all = String.join("\n", agent.rawQueries);
      for (String encoded : new String[] {"x%252Fy", "100%25off.csv", "a%2525b", "a%20b%2Bc", "caf%C3%A9",
          "00%253A00", "q%3Fx%3D1%26y%3D%23z"}) {
        assertTrue(all.contains(encoded), "raw query has " + encoded + ": " + all);
      }
      assertTrue(!all.contains("+"), "no '+' in a raw query (a form parser reads it as a space): " + all);
      assertEquals("s3%3A%2F%2Flake%2Fa%20b%2Bc", AgentClient.encode("s3://lake/a b+c"), "encode");
    }
  }

  @Test
  @DisplayName("JSON: escapes, skipped members, errors that echo nothing")
  void json() {
    assertEquals("a\"b\\c/d\ne\u00e9", Json.stringMembers(
        "{\"k\":\"a\\\"b\\\\c\\/d\\ne\\u00e9\",\"n\":12.5e3,\"t\":true,\"z\":null,\"o\":{\"x\":[1,\"y\"]}}")
        .get("k"), "escapes");
    assertEquals(1, Json.stringMembers(" { \"only\" : \"one\" } ").size(), "string members only");
    for (String bad : new String[] {"", "[]", "{\"a\":}", "{\"a\":\"" + SECRET + "\"", "{\"a\":\"x\"} trailing",
        "{\"a\":nope}"}) {
      try {
        Json.stringMembers(bad);
        throw new AssertionError("accepted " + bad.length() + " chars of bad JSON");
      } catch (IllegalArgumentException e) {
        assertTrue(!e.getMessage().contains(SECRET), "the error echoes the input");
      }
    }
  }

  @Test
  @DisplayName("errors sorted by what the caller does next")
  void errorKinds() {
    assertEquals(AgentException.Kind.REFUSED, new AgentException("m", 403, "AccessDenied", null, null).kind(), "403");
    assertEquals(AgentException.Kind.REFUSED, new AgentException("m", 403, "ImpersonationDenied", null, null).kind(),
        "403 ImpersonationDenied");
    assertEquals(AgentException.Kind.REFUSED, new AgentException("m", 401, "Unauthorized", null, null).kind(), "401");
    assertEquals(AgentException.Kind.REFUSED,
        new AgentException("m", 0, AgentException.CROSS_SCOPE_COPY, null, null).kind(), "a copy across sessions");
    assertEquals(AgentException.Kind.INVALID, new AgentException("m", 400, "InvalidRequest", null, null).kind(),
        "400");
    for (int status : new int[] {0, 200, 404, 429, 500, 503, 504}) {
      assertEquals(AgentException.Kind.UNAVAILABLE, new AgentException("m", status, null, null, null).kind(),
          "status " + status);
    }
  }
}
