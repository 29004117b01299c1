package io.emrfsroleagent.emrfs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.amazonaws.SdkClientException;
import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.auth.AWSSessionCredentials;
import com.sun.net.httpserver.HttpServer;
import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.UserGroupInformation;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The SDK v1 bucket-level provider (EMRFS, S3A without the per-request hook): its HTTP, JSON, caching (a
 * {@link io.emrfsroleagent.agent.ScopeCache}) and error handling against an in-process fake agent, with a
 * hand-moved clock.
 */
final class RoleAgentCredentialsProviderTest {

  static final String SECRET = "SECRETsecretSECRETsecret0123456789abcdefXY";
  static final String SESSION_TOKEN = "SESSIONTOKENsessiontoken//++==";
  static final String AGENT_TOKEN = "agent-token-Zq81";
  static final Instant T0 = Instant.parse("2030-01-01T00:00:00Z");

  static String credentials(String accessKeyId, Instant expiration) {
    return "{\"AccessKeyId\":\"" + accessKeyId + "\",\"SecretAccessKey\":\"" + SECRET + "\",\"Token\":\""
        + SESSION_TOKEN + "\",\"Expiration\":\"" + expiration + "\","
        + "\"RoleArn\":\"arn:aws:iam::222222222222:role/partner-writer\",\"AccountId\":\"222222222222\"}";
  }

  static Path tokenFile;

  @BeforeAll
  static void writeTokenFile() throws Exception {
    tokenFile = Files.createTempFile("emrfs-role-agent-token", "");
    // A trailing newline, as an editor leaves it: the provider must not send it.
    Files.write(tokenFile, (AGENT_TOKEN + "\n").getBytes(StandardCharsets.UTF_8));
  }

  @AfterAll
  static void removeTokenFile() throws Exception {
    Files.deleteIfExists(tokenFile);
  }

  static Configuration conf(FakeAgent agent) {
    Configuration conf = new Configuration(false);
    conf.set(RoleAgentCredentialsProvider.ENDPOINT_KEY, agent == null ? "http://127.0.0.1:1" : agent.endpoint());
    conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, tokenFile.toString());
    return conf;
  }

  static SdkClientException expectFailure(RoleAgentCredentialsProvider provider) {
    try {
      AWSCredentials creds = provider.getCredentials();
      throw new AssertionError("expected an exception, got credentials " + creds.getAWSAccessKeyId());
    } catch (SdkClientException e) {
      String m = String.valueOf(e.getMessage());
      assertTrue(!m.contains(SECRET) && !m.contains(SESSION_TOKEN) && !m.contains(AGENT_TOKEN),
          "exception message leaks a secret");
      return e;
    }
  }

  @Test
  @DisplayName("sends location, user and token; parses the answer")
  void sendsAndParses() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIAPARTNER1", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3a://partner-bucket/some/dir"), conf(agent), new MovableClock(T0));
      AWSCredentials creds = provider.getCredentials();
      assertEquals("/v1/credentials", agent.lastPath, "path");
      assertEquals("s3://partner-bucket/", agent.lastQuery.get("location"), "location (s3a is s3 to the agent)");
      assertEquals(UserGroupInformation.getCurrentUser().getShortUserName(), agent.lastQuery.get("user"), "user");
      assertEquals(2, agent.lastQuery.size(), "query parameters " + agent.lastQuery);
      assertEquals(AGENT_TOKEN, agent.lastAuthorization, "Authorization header");
      assertTrue(creds instanceof AWSSessionCredentials, "session credentials");
      assertEquals("ASIAPARTNER1", creds.getAWSAccessKeyId(), "access key");
      assertEquals(SECRET, creds.getAWSSecretKey(), "secret key");
      assertEquals(SESSION_TOKEN, ((AWSSessionCredentials) creds).getSessionToken(), "session token");
    }
  }

  @Test
  @DisplayName("caches until 15 minutes before expiry, then refetches")
  void cachesUntilRefreshWindow() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIAFIRST", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      assertEquals("ASIAFIRST", provider.getCredentials().getAWSAccessKeyId(), "first fetch");
      agent.reply(200, credentials("ASIASECOND", T0.plus(Duration.ofHours(2))));
      clock.advance(Duration.ofMinutes(44).plusSeconds(59));
      assertEquals("ASIAFIRST", provider.getCredentials().getAWSAccessKeyId(), "cached at 15m01s left");
      assertEquals(1, agent.requests.get(), "requests while cached");
      clock.advance(Duration.ofSeconds(1));
      assertEquals("ASIASECOND", provider.getCredentials().getAWSAccessKeyId(), "refetched at 15m left");
      assertEquals(2, agent.requests.get(), "requests after refresh window");
      clock.advance(Duration.ofMinutes(40));
      assertEquals("ASIASECOND", provider.getCredentials().getAWSAccessKeyId(), "second cached");
      assertEquals(2, agent.requests.get(), "requests");
    }
  }

  @Test
  @DisplayName("keeps credentials that arrive inside the refresh window for a minute")
  void staleCredentialsKeptBriefly() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIASTALE", T0.plus(Duration.ofMinutes(10))));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      provider.getCredentials();
      clock.advance(Duration.ofSeconds(59));
      provider.getCredentials();
      assertEquals(1, agent.requests.get(), "requests within the minute");
      clock.advance(Duration.ofSeconds(1));
      provider.getCredentials();
      assertEquals(2, agent.requests.get(), "requests after the minute");
    }
  }

  @Test
  @DisplayName("serves cached credentials while a refetch fails, until they expire")
  void servesCachedWhileAgentFails() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIACACHED", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      provider.getCredentials();
      agent.reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
      clock.advance(Duration.ofMinutes(50));
      assertEquals("ASIACACHED", provider.getCredentials().getAWSAccessKeyId(), "cached served during failure");
      assertEquals(2, agent.requests.get(), "a refetch was tried");
      clock.advance(Duration.ofMinutes(10));
      SdkClientException e = expectFailure(provider);
      assertTrue(e.getMessage().contains("CredentialsUnavailable"), "after expiry the error surfaces: " + e);
    }
  }

  @Test
  @DisplayName("a refusal on refresh drops the cached credentials: what the agent no longer hands out is not served")
  void refusedRefreshDropsCredentials() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIAOLD", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      provider.getCredentials();
      agent.reply(403, "{\"code\":\"AccessDenied\",\"message\":\"a reload denies s3://own-bucket/\"}");
      clock.advance(Duration.ofMinutes(50)); // into the refresh window, 10 minutes before expiry
      SdkClientException e = expectFailure(provider);
      assertTrue(e.getMessage().contains("HTTP 403 AccessDenied: a reload denies s3://own-bucket/"), e.getMessage());
      expectFailure(provider);
      assertEquals(3, agent.requests.get(), "each call asks again: nothing cached for the bucket");
      agent.reply(200, credentials("ASIANEW", T0.plus(Duration.ofHours(2))));
      assertEquals("ASIANEW", provider.getCredentials().getAWSAccessKeyId(), "allowed again");
    }
  }

  @Test
  @DisplayName("a deny with Scope is remembered for deny-cache, then asked again")
  void denyRemembered() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock(T0);
      agent.reply(403, "{\"code\":\"AccessDenied\",\"message\":\"rule deny-all denies it\","
          + "\"Scope\":\"s3://own-bucket/\"}");
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3a://own-bucket/"), conf(agent), clock);
      String first = expectFailure(provider).getMessage();
      String second = expectFailure(provider).getMessage();
      assertEquals(1, agent.requests.get(), "a remembered deny asks nothing");
      assertEquals(first, second, "the remembered deny says the same");
      clock.advance(Duration.ofSeconds(31));
      expectFailure(provider);
      assertEquals(2, agent.requests.get(), "asked again after deny-cache (30s)");
    }
  }

  @Test
  @DisplayName("an answer is reused as far as its Scope says, and per access (the provider's: none)")
  void scopeAndAccess() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.answerQuery = q -> new FakeAgent.Reply(200, "{\"AccessKeyId\":\"ASIA" + q.get("access")
          + "\",\"SecretAccessKey\":\"" + SECRET + "\",\"Expiration\":\"" + T0.plus(Duration.ofHours(1))
          + "\",\"Scope\":\"s3://own-bucket/\"}");
      MovableClock clock = new MovableClock(T0);
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3a://own-bucket/dir"), conf(agent), clock);
      assertEquals("ASIAnull", provider.getCredentials().getAWSAccessKeyId(), "asked without access");
      assertEquals("ASIAnull", provider.getCredentials().getAWSAccessKeyId(), "its answer reused");
      assertEquals(1, agent.requests.get(), "one request");
      assertTrue(provider.toString().contains("scopes=1"), provider.toString());
      // The same agent's answer for a read under the bucket does not serve the bucket-level provider, nor the
      // other way round: the hooks' caches and this one keep answers by access.
      io.emrfsroleagent.agent.ScopeCache<String> hooks = new io.emrfsroleagent.agent.ScopeCache<>(
          new io.emrfsroleagent.agent.AgentClient(io.emrfsroleagent.agent.AgentSettings.from(conf(agent))), null,
          c -> c.accessKeyId(), clock);
      assertEquals("ASIAread", hooks.get("s3://own-bucket/dir/x", io.emrfsroleagent.agent.Access.READ).value());
      assertEquals("ASIAnull", hooks.get("s3://own-bucket/dir/y").value(), "no access: an entry of its own");
      assertEquals(3, agent.requests.get(), "one request per access");
    }
  }

  @Test
  @DisplayName("agent error carries endpoint, status, code and message")
  void agentErrorMessage() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(403, "{\"code\":\"AccessDenied\",\"message\":\"rule deny-interns denies s3://partner-bucket/\"}");
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://partner-bucket/"), conf(agent), new MovableClock(T0));
      SdkClientException e = expectFailure(provider);
      String m = e.getMessage();
      assertTrue(m.contains(agent.endpoint()), "endpoint in: " + m);
      assertTrue(m.contains("HTTP 403"), "status in: " + m);
      assertTrue(m.contains("AccessDenied"), "code in: " + m);
      assertTrue(m.contains("rule deny-interns denies s3://partner-bucket/"), "message in: " + m);
      assertTrue(m.contains("s3://partner-bucket/"), "location in: " + m);
    }
  }

  @Test
  @DisplayName("error body that is not JSON gives the status")
  void nonJsonError() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(502, "<html>bad gateway</html>");
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      assertTrue(m.contains("HTTP 502") && m.contains(agent.endpoint()), "status and endpoint in: " + m);
    }
  }

  @Test
  @DisplayName("200 with a body that is not JSON never echoes the body")
  void nonJsonSuccess() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "AccessKeyId=ASIA SecretAccessKey=" + SECRET);
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      assertTrue(m.contains("not JSON"), "says not JSON: " + m);
    }
  }

  @Test
  @DisplayName("200 without a field names the field")
  void missingField() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "{\"AccessKeyId\":\"ASIAX\",\"Token\":\"" + SESSION_TOKEN + "\",\"Expiration\":\""
          + T0.plus(Duration.ofHours(1)) + "\"}");
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      assertTrue(m.contains("without SecretAccessKey"), "names the field: " + m);
    }
  }

  @Test
  @DisplayName("long-term keys without a token become basic credentials")
  void longTermKeysWithoutToken() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "{\"AccessKeyId\":\"AKIALONGTERM\",\"SecretAccessKey\":\"" + SECRET
          + "\",\"Token\":null,\"Expiration\":\"" + T0.plus(Duration.ofHours(1)) + "\"}");
      AWSCredentials creds = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0)).getCredentials();
      assertTrue(!(creds instanceof AWSSessionCredentials), "not session credentials: " + creds.getClass());
      assertEquals("AKIALONGTERM", creds.getAWSAccessKeyId(), "access key");
      assertEquals(SECRET, creds.getAWSSecretKey(), "secret key");
    }
  }

  @Test
  @DisplayName("agent down: exception names endpoint and cause; recovers when back")
  void agentDownThenBack() throws Exception {
    int port;
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = probe.getLocalPort(); // closed again: nothing listens there now
    }
    Configuration conf = conf(null);
    String endpoint = "http://127.0.0.1:" + port;
    conf.set(RoleAgentCredentialsProvider.ENDPOINT_KEY, endpoint);
    RoleAgentCredentialsProvider provider =
        new RoleAgentCredentialsProvider(new URI("s3a://own-bucket/"), conf, new MovableClock(T0));
    String m = expectFailure(provider).getMessage();
    assertTrue(m.contains(endpoint), "endpoint in: " + m);
    assertTrue(m.contains("Connection refused"), "cause in: " + m);

    HttpServer back = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 0);
    back.createContext("/", exchange -> {
      byte[] bytes = ("{\"AccessKeyId\":\"ASIABACK\",\"SecretAccessKey\":\"" + SECRET + "\",\"Token\":\""
          + SESSION_TOKEN + "\",\"Expiration\":\"" + T0.plus(Duration.ofHours(1)) + "\"}")
          .getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, bytes.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(bytes);
      }
    });
    back.start();
    try {
      assertEquals("ASIABACK", provider.getCredentials().getAWSAccessKeyId(), "recovered");
    } finally {
      back.stop(0);
    }
  }

  @Test
  @DisplayName("read timeout names the endpoint")
  void readTimeout() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIASLOW", T0.plus(Duration.ofHours(1))));
      agent.delayMs = 2_000;
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.READ_TIMEOUT_KEY, "300ms");
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      assertTrue(m.contains(agent.endpoint()) && m.contains("timed out"), "endpoint and timeout in: " + m);
    }
  }

  @Test
  @DisplayName("missing token file is named; empty token-file key sends no header")
  void tokenFile() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIANOTOKEN", T0.plus(Duration.ofHours(1))));
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "/nonexistent/emrfs-role-agent/token");
      String m = expectFailure(
          new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0))).getMessage();
      assertTrue(m.contains("/nonexistent/emrfs-role-agent/token"), "file named in: " + m);
      assertEquals(0, agent.requests.get(), "no request without the token");

      conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "");
      new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0)).getCredentials();
      assertEquals(null, agent.lastAuthorization, "no Authorization header");
    }
  }

  @Test
  @DisplayName("concurrent callers share one fetch")
  void concurrentCallersShareOneFetch() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIASHARED", T0.plus(Duration.ofHours(1))));
      agent.delayMs = 300; // keeps the first fetch in flight while the others arrive
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      ExecutorService pool = Executors.newFixedThreadPool(16);
      try {
        List<Callable<String>> calls = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
          calls.add(() -> provider.getCredentials().getAWSAccessKeyId());
        }
        for (Future<String> f : pool.invokeAll(calls)) {
          assertEquals("ASIASHARED", f.get(), "every caller's key");
        }
      } finally {
        pool.shutdownNow();
      }
      assertEquals(1, agent.requests.get(), "agent requests");
    }
  }

  @Test
  @DisplayName("refresh() forces a new fetch")
  void refreshForcesFetch() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIAONE", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      provider.getCredentials();
      agent.reply(200, credentials("ASIATWO", T0.plus(Duration.ofHours(1))));
      provider.refresh();
      assertEquals("ASIATWO", provider.getCredentials().getAWSAccessKeyId(), "after refresh()");
      assertEquals(2, agent.requests.get(), "requests");
    }
  }

  @Test
  @DisplayName("no-arg constructor and send-location=false ask without location")
  void noLocation() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIANOLOC", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider noArg = new RoleAgentCredentialsProvider();
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.ENDPOINT_KEY, agent.endpoint() + "/");
      noArg.setConf(conf);
      noArg.getCredentials();
      noArg.getCredentials();
      assertEquals(1, agent.requests.get(), "an answer asked without a location is cached too");
      assertEquals(null, agent.lastQuery.get("location"), "no-arg constructor: location");
      assertTrue(agent.lastQuery.containsKey("user"), "no-arg constructor: user sent");
      assertEquals("/v1/credentials", agent.lastPath, "trailing slash in endpoint ignored");

      conf.setBoolean(RoleAgentCredentialsProvider.SEND_LOCATION_KEY, false);
      conf.setBoolean(RoleAgentCredentialsProvider.SEND_USER_KEY, false);
      new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0)).getCredentials();
      assertEquals(null, agent.lastRawQuery, "no query at all");
    }
  }

  @Test
  @DisplayName("location from the filesystem URI")
  void locationOfUris() throws Exception {
    assertEquals("s3://my-bucket/", RoleAgentCredentialsProvider.locationOf(new URI("s3://my-bucket")), "s3");
    assertEquals("s3://my.bucket/", RoleAgentCredentialsProvider.locationOf(new URI("S3A://my.bucket/a/b")),
        "s3a, case, key dropped");
    assertEquals("s3://under_score/", RoleAgentCredentialsProvider.locationOf(new URI("s3n://under_score/k")),
        "bucket that is no host name");
    assertEquals("s3://b/", RoleAgentCredentialsProvider.locationOf(new URI("s3a://AKIA:secret@b/")),
        "userinfo dropped");
    assertEquals(null, RoleAgentCredentialsProvider.locationOf(null), "no URI");
    assertEquals(null, RoleAgentCredentialsProvider.locationOf(new URI("file:///tmp/x")), "no bucket");
  }

  @Test
  @DisplayName("toString and errors never contain secrets")
  void noSecretsAnywhere() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIATOSTRING", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      AWSCredentials creds = provider.getCredentials();
      String text = provider.toString() + " " + creds.toString();
      assertTrue(!text.contains(SECRET) && !text.contains(SESSION_TOKEN) && !text.contains(AGENT_TOKEN),
          "toString leaks: " + provider);
      assertTrue(provider.toString().contains(agent.endpoint()), "toString names the endpoint: " + provider);
    }
  }
}
