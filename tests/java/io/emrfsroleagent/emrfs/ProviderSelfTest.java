package io.emrfsroleagent.emrfs;

import com.amazonaws.SdkClientException;
import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.auth.AWSSessionCredentials;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.UserGroupInformation;

/**
 * The provider's HTTP, JSON, caching and error handling against an in-process fake agent, with a hand-moved
 * clock. Prints one line per case and a closing "N passed, N failed"; exits non-zero on any failure.
 */
public final class ProviderSelfTest {

  static final String SECRET = "SECRETsecretSECRETsecret0123456789abcdefXY";
  static final String SESSION_TOKEN = "SESSIONTOKENsessiontoken//++==";
  static final String AGENT_TOKEN = "agent-token-Zq81";
  static final Instant T0 = Instant.parse("2030-01-01T00:00:00Z");

  /** A clock the test moves. */
  static final class MovableClock extends Clock {
    volatile Instant now = T0;

    @Override
    public java.time.ZoneId getZone() {
      return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(java.time.ZoneId zone) {
      return this;
    }

    @Override
    public Instant instant() {
      return now;
    }

    void advance(Duration d) {
      now = now.plus(d);
    }
  }

  /** A fake agent: answers with whatever {@link #status} and {@link #body} say, records each request. */
  static final class FakeAgent implements AutoCloseable {
    final HttpServer server;
    final AtomicInteger requests = new AtomicInteger();
    volatile int status = 200;
    volatile String body;
    volatile long delayMs;
    volatile Map<String, String> lastQuery = new HashMap<>();
    volatile String lastRawQuery;
    volatile String lastAuthorization;
    volatile String lastPath;

    FakeAgent() throws IOException {
      server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
      server.setExecutor(Executors.newCachedThreadPool());
      server.createContext("/", this::handle);
      server.start();
    }

    String endpoint() {
      return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    void credentials(String accessKeyId, Instant expiration) {
      status = 200;
      body = "{\"AccessKeyId\":\"" + accessKeyId + "\",\"SecretAccessKey\":\"" + SECRET + "\",\"Token\":\""
          + SESSION_TOKEN + "\",\"Expiration\":\"" + expiration + "\","
          + "\"RoleArn\":\"arn:aws:iam::222222222222:role/partner-writer\",\"AccountId\":\"222222222222\"}";
    }

    private void handle(HttpExchange exchange) throws IOException {
      requests.incrementAndGet();
      lastPath = exchange.getRequestURI().getPath();
      lastRawQuery = exchange.getRequestURI().getRawQuery();
      Map<String, String> query = new HashMap<>();
      if (lastRawQuery != null) {
        for (String pair : lastRawQuery.split("&")) {
          int eq = pair.indexOf('=');
          query.put(URLDecoder.decode(pair.substring(0, eq), "UTF-8"),
              URLDecoder.decode(pair.substring(eq + 1), "UTF-8"));
        }
      }
      lastQuery = query;
      lastAuthorization = exchange.getRequestHeaders().getFirst("Authorization");
      if (delayMs > 0) {
        try {
          Thread.sleep(delayMs);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
      exchange.getResponseHeaders().set("Content-Type", "application/json");
      try {
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
          out.write(bytes);
        }
      } catch (IOException clientGone) {
        // The read-timeout case hangs up before the answer.
      }
    }

    @Override
    public void close() {
      server.stop(0);
      ((java.util.concurrent.ExecutorService) server.getExecutor()).shutdownNow();
    }
  }

  interface Case {
    void run() throws Exception;
  }

  static Path tokenFile;
  static int passed;
  static int failed;

  public static void main(String[] args) throws Exception {
    tokenFile = Files.createTempFile("emrfs-role-agent-token", "");
    // A trailing newline, as an editor leaves it: the provider must not send it.
    Files.write(tokenFile, (AGENT_TOKEN + "\n").getBytes(StandardCharsets.UTF_8));
    try {
      check("sends location, user and token; parses the answer", ProviderSelfTest::sendsAndParses);
      check("caches until 15 minutes before expiry, then refetches", ProviderSelfTest::cachesUntilRefreshWindow);
      check("keeps credentials that arrive inside the refresh window for a minute",
          ProviderSelfTest::staleCredentialsKeptBriefly);
      check("serves cached credentials while a refetch fails, until they expire",
          ProviderSelfTest::servesCachedWhileAgentFails);
      check("agent error carries endpoint, status, code and message", ProviderSelfTest::agentErrorMessage);
      check("error body that is not JSON gives the status", ProviderSelfTest::nonJsonError);
      check("200 with a body that is not JSON never echoes the body", ProviderSelfTest::nonJsonSuccess);
      check("200 without a field names the field", ProviderSelfTest::missingField);
      check("long-term keys without a token become basic credentials",
          ProviderSelfTest::longTermKeysWithoutToken);
      check("agent down: exception names endpoint and cause; recovers when back",
          ProviderSelfTest::agentDownThenBack);
      check("read timeout names the endpoint", ProviderSelfTest::readTimeout);
      check("missing token file is named; empty token-file key sends no header", ProviderSelfTest::tokenFile);
      check("concurrent callers share one fetch", ProviderSelfTest::concurrentCallersShareOneFetch);
      check("refresh() forces a new fetch", ProviderSelfTest::refreshForcesFetch);
      check("no-arg constructor and send-location=false ask without location",
          ProviderSelfTest::noLocation);
      check("location from the filesystem URI", ProviderSelfTest::locationOfUris);
      check("toString and errors never contain secrets", ProviderSelfTest::noSecretsAnywhere);
    } finally {
      Files.deleteIfExists(tokenFile);
    }
    System.out.println(passed + " passed, " + failed + " failed");
    System.exit(failed == 0 ? 0 : 1);
  }

  static void check(String name, Case c) {
    try {
      c.run();
      passed++;
      System.out.println("PASS " + name);
    } catch (Throwable t) {
      failed++;
      System.out.println("FAIL " + name + ": " + t);
      t.printStackTrace(System.out);
    }
  }

  static void expect(boolean condition, String what) {
    if (!condition) {
      throw new AssertionError(what);
    }
  }

  static void expectEquals(Object expected, Object actual, String what) {
    if (expected == null ? actual != null : !expected.equals(actual)) {
      throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
    }
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
      expect(!m.contains(SECRET) && !m.contains(SESSION_TOKEN) && !m.contains(AGENT_TOKEN),
          "exception message leaks a secret");
      return e;
    }
  }

  static void sendsAndParses() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIAPARTNER1", T0.plus(Duration.ofHours(1)));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3a://partner-bucket/some/dir"), conf(agent), new MovableClock());
      AWSCredentials creds = provider.getCredentials();
      expectEquals("/v1/credentials", agent.lastPath, "path");
      expectEquals("s3a://partner-bucket/", agent.lastQuery.get("location"), "location");
      expectEquals(UserGroupInformation.getCurrentUser().getShortUserName(), agent.lastQuery.get("user"), "user");
      expectEquals(2, agent.lastQuery.size(), "query parameters " + agent.lastQuery);
      expectEquals(AGENT_TOKEN, agent.lastAuthorization, "Authorization header");
      expect(creds instanceof AWSSessionCredentials, "session credentials");
      expectEquals("ASIAPARTNER1", creds.getAWSAccessKeyId(), "access key");
      expectEquals(SECRET, creds.getAWSSecretKey(), "secret key");
      expectEquals(SESSION_TOKEN, ((AWSSessionCredentials) creds).getSessionToken(), "session token");
    }
  }

  static void cachesUntilRefreshWindow() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock();
      agent.credentials("ASIAFIRST", T0.plus(Duration.ofHours(1)));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      expectEquals("ASIAFIRST", provider.getCredentials().getAWSAccessKeyId(), "first fetch");
      agent.credentials("ASIASECOND", T0.plus(Duration.ofHours(2)));
      clock.advance(Duration.ofMinutes(44).plusSeconds(59));
      expectEquals("ASIAFIRST", provider.getCredentials().getAWSAccessKeyId(), "cached at 15m01s left");
      expectEquals(1, agent.requests.get(), "requests while cached");
      clock.advance(Duration.ofSeconds(1));
      expectEquals("ASIASECOND", provider.getCredentials().getAWSAccessKeyId(), "refetched at 15m left");
      expectEquals(2, agent.requests.get(), "requests after refresh window");
      clock.advance(Duration.ofMinutes(40));
      expectEquals("ASIASECOND", provider.getCredentials().getAWSAccessKeyId(), "second cached");
      expectEquals(2, agent.requests.get(), "requests");
    }
  }

  static void staleCredentialsKeptBriefly() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock();
      agent.credentials("ASIASTALE", T0.plus(Duration.ofMinutes(10)));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      provider.getCredentials();
      clock.advance(Duration.ofSeconds(59));
      provider.getCredentials();
      expectEquals(1, agent.requests.get(), "requests within the minute");
      clock.advance(Duration.ofSeconds(1));
      provider.getCredentials();
      expectEquals(2, agent.requests.get(), "requests after the minute");
    }
  }

  static void servesCachedWhileAgentFails() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      MovableClock clock = new MovableClock();
      agent.credentials("ASIACACHED", T0.plus(Duration.ofHours(1)));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      provider.getCredentials();
      agent.status = 503;
      agent.body = "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}";
      clock.advance(Duration.ofMinutes(50));
      expectEquals("ASIACACHED", provider.getCredentials().getAWSAccessKeyId(), "cached served during failure");
      expectEquals(2, agent.requests.get(), "a refetch was tried");
      clock.advance(Duration.ofMinutes(10));
      SdkClientException e = expectFailure(provider);
      expect(e.getMessage().contains("CredentialsUnavailable"), "after expiry the error surfaces: " + e);
    }
  }

  static void agentErrorMessage() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.status = 403;
      agent.body = "{\"code\":\"AccessDenied\",\"message\":\"rule deny-interns denies s3://partner-bucket/\"}";
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://partner-bucket/"), conf(agent), new MovableClock());
      SdkClientException e = expectFailure(provider);
      String m = e.getMessage();
      expect(m.contains(agent.endpoint()), "endpoint in: " + m);
      expect(m.contains("HTTP 403"), "status in: " + m);
      expect(m.contains("AccessDenied"), "code in: " + m);
      expect(m.contains("rule deny-interns denies s3://partner-bucket/"), "message in: " + m);
      expect(m.contains("s3://partner-bucket/"), "location in: " + m);
    }
  }

  static void nonJsonError() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.status = 502;
      agent.body = "<html>bad gateway</html>";
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock());
      String m = expectFailure(provider).getMessage();
      expect(m.contains("HTTP 502") && m.contains(agent.endpoint()), "status and endpoint in: " + m);
    }
  }

  static void nonJsonSuccess() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.status = 200;
      agent.body = "AccessKeyId=ASIA SecretAccessKey=" + SECRET;
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock());
      String m = expectFailure(provider).getMessage();
      expect(m.contains("not JSON"), "says not JSON: " + m);
    }
  }

  static void missingField() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.status = 200;
      agent.body = "{\"AccessKeyId\":\"ASIAX\",\"Token\":\"" + SESSION_TOKEN + "\",\"Expiration\":\""
          + T0.plus(Duration.ofHours(1)) + "\"}";
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock());
      String m = expectFailure(provider).getMessage();
      expect(m.contains("without SecretAccessKey"), "names the field: " + m);
    }
  }

  static void longTermKeysWithoutToken() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.status = 200;
      agent.body = "{\"AccessKeyId\":\"AKIALONGTERM\",\"SecretAccessKey\":\"" + SECRET
          + "\",\"Token\":null,\"Expiration\":\"" + T0.plus(Duration.ofHours(1)) + "\"}";
      AWSCredentials creds = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock()).getCredentials();
      expect(!(creds instanceof AWSSessionCredentials), "not session credentials: " + creds.getClass());
      expectEquals("AKIALONGTERM", creds.getAWSAccessKeyId(), "access key");
      expectEquals(SECRET, creds.getAWSSecretKey(), "secret key");
    }
  }

  static void agentDownThenBack() throws Exception {
    int port;
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = probe.getLocalPort(); // closed again: nothing listens there now
    }
    Configuration conf = conf(null);
    String endpoint = "http://127.0.0.1:" + port;
    conf.set(RoleAgentCredentialsProvider.ENDPOINT_KEY, endpoint);
    RoleAgentCredentialsProvider provider =
        new RoleAgentCredentialsProvider(new URI("s3a://own-bucket/"), conf, new MovableClock());
    String m = expectFailure(provider).getMessage();
    expect(m.contains(endpoint), "endpoint in: " + m);
    expect(m.contains("Connection refused"), "cause in: " + m);

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
      expectEquals("ASIABACK", provider.getCredentials().getAWSAccessKeyId(), "recovered");
    } finally {
      back.stop(0);
    }
  }

  static void readTimeout() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIASLOW", T0.plus(Duration.ofHours(1)));
      agent.delayMs = 2_000;
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.READ_TIMEOUT_KEY, "300ms");
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock());
      String m = expectFailure(provider).getMessage();
      expect(m.contains(agent.endpoint()) && m.contains("timed out"), "endpoint and timeout in: " + m);
    }
  }

  static void tokenFile() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIANOTOKEN", T0.plus(Duration.ofHours(1)));
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "/nonexistent/emrfs-role-agent/token");
      String m = expectFailure(
          new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock())).getMessage();
      expect(m.contains("/nonexistent/emrfs-role-agent/token"), "file named in: " + m);
      expectEquals(0, agent.requests.get(), "no request without the token");

      conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "");
      new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock()).getCredentials();
      expectEquals(null, agent.lastAuthorization, "no Authorization header");
    }
  }

  static void concurrentCallersShareOneFetch() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIASHARED", T0.plus(Duration.ofHours(1)));
      agent.delayMs = 300; // keeps the first fetch in flight while the others arrive
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock());
      ExecutorService pool = Executors.newFixedThreadPool(16);
      try {
        List<Callable<String>> calls = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
          calls.add(() -> provider.getCredentials().getAWSAccessKeyId());
        }
        for (Future<String> f : pool.invokeAll(calls)) {
          expectEquals("ASIASHARED", f.get(), "every caller's key");
        }
      } finally {
        pool.shutdownNow();
      }
      expectEquals(1, agent.requests.get(), "agent requests");
    }
  }

  static void refreshForcesFetch() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIAONE", T0.plus(Duration.ofHours(1)));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock());
      provider.getCredentials();
      agent.credentials("ASIATWO", T0.plus(Duration.ofHours(1)));
      provider.refresh();
      expectEquals("ASIATWO", provider.getCredentials().getAWSAccessKeyId(), "after refresh()");
      expectEquals(2, agent.requests.get(), "requests");
    }
  }

  static void noLocation() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIANOLOC", T0.plus(Duration.ofHours(1)));
      RoleAgentCredentialsProvider noArg = new RoleAgentCredentialsProvider();
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.ENDPOINT_KEY, agent.endpoint() + "/");
      noArg.setConf(conf);
      noArg.getCredentials();
      expectEquals(null, agent.lastQuery.get("location"), "no-arg constructor: location");
      expect(agent.lastQuery.containsKey("user"), "no-arg constructor: user sent");
      expectEquals("/v1/credentials", agent.lastPath, "trailing slash in endpoint ignored");

      conf.setBoolean(RoleAgentCredentialsProvider.SEND_LOCATION_KEY, false);
      conf.setBoolean(RoleAgentCredentialsProvider.SEND_USER_KEY, false);
      new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock()).getCredentials();
      expectEquals(null, agent.lastRawQuery, "no query at all");
    }
  }

  static void locationOfUris() throws Exception {
    expectEquals("s3://my-bucket/", RoleAgentCredentialsProvider.locationOf(new URI("s3://my-bucket")), "s3");
    expectEquals("s3a://my.bucket/", RoleAgentCredentialsProvider.locationOf(new URI("S3A://my.bucket/a/b")),
        "s3a, case, key dropped");
    expectEquals("s3n://under_score/", RoleAgentCredentialsProvider.locationOf(new URI("s3n://under_score/k")),
        "bucket that is no host name");
    expectEquals("s3a://b/", RoleAgentCredentialsProvider.locationOf(new URI("s3a://AKIA:secret@b/")),
        "userinfo dropped");
    expectEquals(null, RoleAgentCredentialsProvider.locationOf(null), "no URI");
    expectEquals(null, RoleAgentCredentialsProvider.locationOf(new URI("file:///tmp/x")), "no bucket");
  }

  static void noSecretsAnywhere() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.credentials("ASIATOSTRING", T0.plus(Duration.ofHours(1)));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock());
      AWSCredentials creds = provider.getCredentials();
      String text = provider.toString() + " " + creds.toString();
      expect(!text.contains(SECRET) && !text.contains(SESSION_TOKEN) && !text.contains(AGENT_TOKEN),
          "toString leaks: " + provider);
      expect(provider.toString().contains(agent.endpoint()), "toString names the endpoint: " + provider);
    }
  }
}
