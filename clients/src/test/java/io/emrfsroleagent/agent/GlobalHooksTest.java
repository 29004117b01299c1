package io.emrfsroleagent.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The JVM-wide hooks' settings ({@link ClientProperties}: system property, then environment, then the
 * properties file, then the defaults; where each came from) and their per-user caches ({@link GlobalHooks}),
 * against a fake agent. Needs no Hadoop (HadoopUserTest: what it finds without).
 */
final class GlobalHooksTest {
  static final Path DEFAULT = Paths.get(ClientProperties.DEFAULT_FILE);

  static Properties props(String... kv) {
    Properties p = new Properties();
    for (int i = 0; i < kv.length; i += 2) {
      p.setProperty(kv[i], kv[i + 1]);
    }
    return p;
  }

  static Map<String, String> env(String... kv) {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      m.put(kv[i], kv[i + 1]);
    }
    return m;
  }

  /** A reader that knows one file. */
  static ClientProperties.FileReader file(Path path, Properties content) {
    return p -> p.equals(path) ? content : null;
  }

  @Test
  @DisplayName("defaults when nothing is set and the file does not exist")
  void defaults() {
    ClientProperties.Resolved r = ClientProperties.resolve(props(), env(), file(DEFAULT, null));
    assertEquals("http://127.0.0.1:9944", r.settings.endpoint, "endpoint");
    assertEquals("/etc/emrfs-role-agent/token", r.settings.tokenFile, "token file");
    assertEquals("endpoint from the default (/etc/emrfs-role-agent/client.properties does not exist), token file"
        + " from the default (/etc/emrfs-role-agent/client.properties does not exist)", r.origin, "origin");
  }

  @Test
  @DisplayName("each setting: system property, else environment, else the file")
  void precedence() {
    Properties fromFile = props("endpoint", "http://file:1", "token-file", "/file/token");
    ClientProperties.FileReader reader = file(DEFAULT, fromFile);
    ClientProperties.Resolved r = ClientProperties.resolve(props(), env(), reader);
    assertEquals("http://file:1", r.settings.endpoint, "file endpoint");
    assertEquals("/file/token", r.settings.tokenFile, "file token");
    assertEquals("endpoint from /etc/emrfs-role-agent/client.properties (endpoint), token file from"
        + " /etc/emrfs-role-agent/client.properties (token-file)", r.origin, "origin");

    r = ClientProperties.resolve(props(), env("EMRFS_ROLE_AGENT_ENDPOINT", "http://env:2/"), reader);
    assertEquals("http://env:2", r.settings.endpoint, "environment beats the file (trailing slash dropped)");
    assertEquals("/file/token", r.settings.tokenFile, "token still from the file");

    r = ClientProperties.resolve(props("emrfs-role-agent.endpoint", "http://prop:3",
        "emrfs-role-agent.token-file", "/prop/token"), env("EMRFS_ROLE_AGENT_ENDPOINT", "http://env:2",
        "EMRFS_ROLE_AGENT_TOKEN_FILE", "/env/token"), reader);
    assertEquals("http://prop:3", r.settings.endpoint, "system property beats the environment");
    assertEquals("/prop/token", r.settings.tokenFile, "system property beats the environment (token)");
    assertEquals("endpoint from system property emrfs-role-agent.endpoint, token file from system property"
        + " emrfs-role-agent.token-file", r.origin, "origin");

    r = ClientProperties.resolve(props(), env("EMRFS_ROLE_AGENT_TOKEN_FILE", "/env/token"), reader);
    assertEquals("/env/token", r.settings.tokenFile, "environment token");
    assertTrue(r.origin.endsWith("token file from environment variable EMRFS_ROLE_AGENT_TOKEN_FILE"), r.origin);
  }

  @Test
  @DisplayName("the file's path from emrfs-role-agent.client-properties")
  void otherFile() {
    Path other = Paths.get("/srv/conf/agent.properties");
    ClientProperties.Resolved r = ClientProperties.resolve(
        props("emrfs-role-agent.client-properties", other.toString()), env(),
        file(other, props("endpoint", "https://agent.local:9944")));
    assertEquals("https://agent.local:9944", r.settings.endpoint, "endpoint from the other file");
    assertTrue(r.origin.startsWith("endpoint from /srv/conf/agent.properties (endpoint)"), r.origin);
    assertTrue(r.origin.endsWith("token file from the default (not set in /srv/conf/agent.properties)"), r.origin);
  }

  @Test
  @DisplayName("an empty token file setting sends no token")
  void emptyToken() {
    ClientProperties.Resolved r = ClientProperties.resolve(props(), env(), file(DEFAULT, props("token-file", "")));
    assertEquals(null, r.settings.tokenFile, "no token file");
  }

  @Test
  @DisplayName("an invalid endpoint names its source")
  void invalidEndpoint() {
    try {
      ClientProperties.resolve(props(), env("EMRFS_ROLE_AGENT_ENDPOINT", "127.0.0.1:9944"), file(DEFAULT, null));
      throw new AssertionError("accepted an endpoint without a scheme");
    } catch (IllegalArgumentException e) {
      assertEquals("emrfs-role-agent endpoint from environment variable EMRFS_ROLE_AGENT_ENDPOINT must be an"
          + " http:// URL, got 127.0.0.1:9944", e.getMessage(), "message");
    }
  }

  @Test
  @DisplayName("an unreadable file fails naming it")
  void unreadableFile() {
    try {
      ClientProperties.resolve(props(), env(), p -> {
        throw new AccessDeniedException(p.toString());
      });
      throw new AssertionError("an unreadable file was taken for a missing one");
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().startsWith("emrfs-role-agent client properties /etc/emrfs-role-agent/client.properties"
          + " cannot be read: java.nio.file.AccessDeniedException"), e.getMessage());
    }
  }

  static ClientProperties.Resolved settingsFor(FakeAgent agent) {
    return settingsAt(agent.endpoint());
  }

  static ClientProperties.Resolved settingsAt(String endpoint) {
    return ClientProperties.resolve(props("emrfs-role-agent.endpoint", endpoint,
        "emrfs-role-agent.token-file", ""), env(), file(DEFAULT, null));
  }

  @Test
  @DisplayName("one cache per user, the OS user's without user=")
  void cachePerUser() throws IOException {
    Instant t0 = Instant.parse("2030-01-01T00:00:00Z");
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "{\"AccessKeyId\":\"ASIAONE\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\","
          + "\"Expiration\":\"" + t0.plusSeconds(3600) + "\",\"Scope\":\"s3://b/teamA/\"}");
      AtomicReference<String> user = new AtomicReference<>();
      GlobalHooks<AgentCredentials> hooks = new GlobalHooks<>(() -> settingsFor(agent), c -> c,
          new MovableClock(t0));
      ScopeCache<AgentCredentials> os = hooks.cache(ClientUser.of(user::get));
      assertEquals(null, os.user(), "no Hadoop user: the OS user's cache");
      os.get("s3://b/teamA/x", Access.READ);
      assertTrue(!agent.lastQuery.containsKey("user"), "no user= without a Hadoop user: " + agent.lastQuery);
      assertTrue(hooks.cache(ClientUser.of(user::get)) == os, "the same cache again");

      user.set("alice");
      ClientUser alicesClient = ClientUser.of(user::get);
      ScopeCache<AgentCredentials> alice = hooks.cache(alicesClient);
      assertTrue(alice != os && "alice".equals(alice.user()), "alice has her own cache");
      alice.get("s3://b/teamA/y", Access.READ);
      assertEquals("alice", agent.lastQuery.get("user"), "user= for alice");
      user.set("bob");
      ScopeCache<AgentCredentials> bob = hooks.cache(ClientUser.of(user::get));
      assertTrue(bob != alice && "bob".equals(bob.user()), "bob has his own cache");
      assertTrue(hooks.cache(alicesClient) == alice, "a client keeps the user it was built by");
      assertTrue(hooks.cache(ClientUser.of(() -> "alice")) == alice, "alice's cache is shared by her clients");
      assertEquals(2, agent.requests.get(), "one agent request per user and scope");
    }
  }

  @Test
  @DisplayName("a client whose user cannot be determined fails its requests")
  void unknownUser() {
    ClientUser user = ClientUser.of(() -> {
      throw new AgentException("emrfs-role-agent client could not determine the Hadoop user: login failed", 0,
          null, null, null);
    });
    GlobalHooks<AgentCredentials> hooks = new GlobalHooks<>(() -> settingsAt("http://127.0.0.1:9"), c -> c,
        new MovableClock(Instant.parse("2030-01-01T00:00:00Z")));
    try {
      hooks.cache(user);
      throw new AssertionError("a client without a user got a cache");
    } catch (AgentException e) {
      assertEquals("emrfs-role-agent client could not determine the Hadoop user: login failed", e.getMessage(),
          "message");
    }
  }

  @Test
  @DisplayName("invalid settings fail each S3 request, not the hooks' creation")
  void invalidSettings() {
    GlobalHooks<AgentCredentials> hooks = new GlobalHooks<>(() -> {
      throw new IllegalArgumentException("emrfs-role-agent endpoint from x must be an http:// URL, got ftp://y");
    }, c -> c, new MovableClock(Instant.parse("2030-01-01T00:00:00Z")));
    try {
      hooks.cache(ClientUser.of(() -> null));
      throw new AssertionError("invalid settings served a cache");
    } catch (AgentException e) {
      assertEquals("emrfs-role-agent JVM-wide S3 hooks (emrfs-role-agent-hooks.jar) cannot ask the agent:"
          + " emrfs-role-agent endpoint from x must be an http:// URL, got ftp://y", e.getMessage(), "message");
    }
  }

  @Test
  @DisplayName("a failure to reach the agent says where the settings came from")
  void explain() throws IOException {
    FakeAgent agent = new FakeAgent();
    agent.close(); // nothing listens there any more
    GlobalHooks<AgentCredentials> hooks = new GlobalHooks<>(() -> settingsFor(agent), c -> c,
        new MovableClock(Instant.parse("2030-01-01T00:00:00Z")));
    try {
      hooks.cache(ClientUser.of(() -> null)).get("s3://b/teamA/x", Access.WRITE);
      throw new AssertionError("a closed agent answered");
    } catch (AgentException e) {
      String message = hooks.explain(e).getMessage();
      assertTrue(message.startsWith("emrfs-role-agent at " + agent.endpoint() + " could not be reached"), message);
      assertTrue(message.endsWith("[JVM-wide S3 hooks, emrfs-role-agent-hooks.jar: endpoint from system property"
          + " emrfs-role-agent.endpoint, token file from system property emrfs-role-agent.token-file]"), message);
    }
    AgentException denied = new AgentException("refused", 403, "AccessDenied", "s3://b/secret/", null);
    assertTrue(hooks.explain(denied) == denied, "the agent's own refusal is left as it is");
  }
}
