package io.emrfsroleagent.emrfs;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expect;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

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

/**
 * The provider's HTTP, JSON, caching and error handling against an in-process fake agent, with a hand-moved
 * clock. Prints one line per case and a closing "N passed, N failed"; exits non-zero on any failure.
 */
public final class ProviderSelfTest {

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
    finish();
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
      agent.reply(200, credentials("ASIAPARTNER1", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3a://partner-bucket/some/dir"), conf(agent), new MovableClock(T0));
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
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIAFIRST", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      expectEquals("ASIAFIRST", provider.getCredentials().getAWSAccessKeyId(), "first fetch");
      agent.reply(200, credentials("ASIASECOND", T0.plus(Duration.ofHours(2))));
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
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIASTALE", T0.plus(Duration.ofMinutes(10))));
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
      MovableClock clock = new MovableClock(T0);
      agent.reply(200, credentials("ASIACACHED", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://own-bucket/"), conf(agent), clock);
      provider.getCredentials();
      agent.reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
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
      agent.reply(403, "{\"code\":\"AccessDenied\",\"message\":\"rule deny-interns denies s3://partner-bucket/\"}");
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://partner-bucket/"), conf(agent), new MovableClock(T0));
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
      agent.reply(502, "<html>bad gateway</html>");
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      expect(m.contains("HTTP 502") && m.contains(agent.endpoint()), "status and endpoint in: " + m);
    }
  }

  static void nonJsonSuccess() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "AccessKeyId=ASIA SecretAccessKey=" + SECRET);
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      expect(m.contains("not JSON"), "says not JSON: " + m);
    }
  }

  static void missingField() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "{\"AccessKeyId\":\"ASIAX\",\"Token\":\"" + SESSION_TOKEN + "\",\"Expiration\":\""
          + T0.plus(Duration.ofHours(1)) + "\"}");
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      expect(m.contains("without SecretAccessKey"), "names the field: " + m);
    }
  }

  static void longTermKeysWithoutToken() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, "{\"AccessKeyId\":\"AKIALONGTERM\",\"SecretAccessKey\":\"" + SECRET
          + "\",\"Token\":null,\"Expiration\":\"" + T0.plus(Duration.ofHours(1)) + "\"}");
      AWSCredentials creds = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0)).getCredentials();
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
        new RoleAgentCredentialsProvider(new URI("s3a://own-bucket/"), conf, new MovableClock(T0));
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
      agent.reply(200, credentials("ASIASLOW", T0.plus(Duration.ofHours(1))));
      agent.delayMs = 2_000;
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.READ_TIMEOUT_KEY, "300ms");
      RoleAgentCredentialsProvider provider =
          new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0));
      String m = expectFailure(provider).getMessage();
      expect(m.contains(agent.endpoint()) && m.contains("timed out"), "endpoint and timeout in: " + m);
    }
  }

  static void tokenFile() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIANOTOKEN", T0.plus(Duration.ofHours(1))));
      Configuration conf = conf(agent);
      conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "/nonexistent/emrfs-role-agent/token");
      String m = expectFailure(
          new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0))).getMessage();
      expect(m.contains("/nonexistent/emrfs-role-agent/token"), "file named in: " + m);
      expectEquals(0, agent.requests.get(), "no request without the token");

      conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "");
      new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0)).getCredentials();
      expectEquals(null, agent.lastAuthorization, "no Authorization header");
    }
  }

  static void concurrentCallersShareOneFetch() throws Exception {
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
      agent.reply(200, credentials("ASIAONE", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      provider.getCredentials();
      agent.reply(200, credentials("ASIATWO", T0.plus(Duration.ofHours(1))));
      provider.refresh();
      expectEquals("ASIATWO", provider.getCredentials().getAWSAccessKeyId(), "after refresh()");
      expectEquals(2, agent.requests.get(), "requests");
    }
  }

  static void noLocation() throws Exception {
    try (FakeAgent agent = new FakeAgent()) {
      agent.reply(200, credentials("ASIANOLOC", T0.plus(Duration.ofHours(1))));
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
      new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0)).getCredentials();
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
      agent.reply(200, credentials("ASIATOSTRING", T0.plus(Duration.ofHours(1))));
      RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(
          new URI("s3://b/"), conf(agent), new MovableClock(T0));
      AWSCredentials creds = provider.getCredentials();
      String text = provider.toString() + " " + creds.toString();
      expect(!text.contains(SECRET) && !text.contains(SESSION_TOKEN) && !text.contains(AGENT_TOKEN),
          "toString leaks: " + provider);
      expect(provider.toString().contains(agent.endpoint()), "toString names the endpoint: " + provider);
    }
  }
}
