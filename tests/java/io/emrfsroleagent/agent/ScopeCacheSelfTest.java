package io.emrfsroleagent.agent;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expect;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.FakeAgent.Reply;
import io.emrfsroleagent.testing.MovableClock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.conf.Configuration;

/**
 * The scope cache, the request locations and the agent client against an in-process fake agent that answers
 * with {@code Scope} (or without, as agents before it did), with a hand-moved clock. Prints one line per case
 * and a closing "N passed, N failed"; exits non-zero on any failure.
 */
public final class ScopeCacheSelfTest {
  static final String SECRET = "SECRETsecretSECRETsecret0123456789abcdefXY";
  static final String SESSION_TOKEN = "SESSIONTOKENsessiontoken//++==";
  static final Instant T0 = Instant.parse("2030-01-01T00:00:00Z");

  static Reply creds(String keyId, Instant expiration, String scope) {
    return new Reply(200, "{\"AccessKeyId\":\"" + keyId + "\",\"SecretAccessKey\":\"" + SECRET + "\",\"Token\":\""
        + SESSION_TOKEN + "\",\"Expiration\":\"" + expiration + "\",\"RoleArn\":\"arn:aws:iam::222222222222:role/"
        + keyId + "\",\"AccountId\":\"222222222222\"" + (scope == null ? "" : ",\"Scope\":\"" + scope + "\"") + "}");
  }

  static Reply deny(String scope) {
    return new Reply(403, "{\"code\":\"AccessDenied\",\"message\":\"denied by rule secret (deny)\""
        + (scope == null ? "" : ",\"Scope\":\"" + scope + "\"") + "}");
  }

  static ScopeCache<AgentCredentials> scopeCache(FakeAgent agent, MovableClock clock) {
    Configuration conf = new Configuration(false);
    conf.set(AgentSettings.ENDPOINT_KEY, agent.endpoint());
    conf.set(AgentSettings.TOKEN_FILE_KEY, "");
    return new ScopeCache<>(new AgentClient(AgentSettings.from(conf)), "analyst", c -> c, clock);
  }

  public static void main(String[] args) {
    check("one answer serves every location under its Scope", ScopeCacheSelfTest::scopeServesPrefix);
    check("the longest matching scope wins", ScopeCacheSelfTest::longestScopeWins);
    check("without Scope an answer holds for exactly its location", ScopeCacheSelfTest::noScopeIsExact);
    check("a Scope that does not contain the location is not trusted", ScopeCacheSelfTest::foreignScopeIgnored);
    check("concurrent misses for one location share one request", ScopeCacheSelfTest::oneFetchInFlight);
    check("refreshes ahead of expiry, asking for the scope", ScopeCacheSelfTest::refreshAhead);
    check("a failed refresh serves the current credentials until they expire",
        ScopeCacheSelfTest::failedRefreshServesCurrent);
    check("a deny with Scope is remembered for deny-cache", ScopeCacheSelfTest::denyCached);
    check("a copy across sessions fails naming both; within one it runs", ScopeCacheSelfTest::copyAcrossSessions);
    check("a bulk delete across sessions fails", ScopeCacheSelfTest::bulkAcrossSessions);
    check("JSON: escapes, skipped members, errors that echo nothing", ScopeCacheSelfTest::json);
    check("locations: s3a/s3n become s3; bucket roots; common prefixes", ScopeCacheSelfTest::locations);
    check("toString and exception messages never contain secrets", ScopeCacheSelfTest::noSecrets);
    finish();
  }

  static String key(ScopeCache<AgentCredentials> cache, String location) {
    return cache.get(location).value().accessKeyId();
  }

  static AgentException expectAgentException(Runnable r) {
    try {
      r.run();
    } catch (AgentException e) {
      return e;
    }
    throw new AssertionError("expected an AgentException");
  }

  static void scopeServesPrefix() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/teamA/")
        ? creds("ASIATEAMA", exp, "s3://b/teamA/") : creds("ASIAOTHER", exp, loc))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      for (int i = 0; i < 1000; i++) {
        expectEquals("ASIATEAMA", key(cache, "s3://b/teamA/part-" + i), "under the scope");
      }
      expectEquals(1, agent.requests.get(), "agent requests for 1000 locations under one scope");
      expectEquals("ASIAOTHER", key(cache, "s3://b/teamB/x"), "outside the scope");
      expectEquals(2, agent.requests.get(), "agent requests");
      expectEquals(Arrays.asList("s3://b/teamA/part-0", "s3://b/teamB/x"), agent.locations, "locations asked");
    }
  }

  static void longestScopeWins() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/exports/secret/")
        ? creds("ASIASECRET", exp, "s3://b/exports/secret/") : creds("ASIAEXPORTS", exp, "s3://b/exports/2"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      expectEquals("ASIAEXPORTS", key(cache, "s3://b/exports/2026/a"), "exports");
      expectEquals("ASIASECRET", key(cache, "s3://b/exports/secret/x"), "secret: not under s3://b/exports/2");
      expectEquals("ASIASECRET", key(cache, "s3://b/exports/secret/y"), "secret again");
      expectEquals("ASIAEXPORTS", key(cache, "s3://b/exports/2027/b"), "exports again");
      expectEquals(2, agent.requests.get(), "agent requests");
      expectEquals(2, cache.size(), "scopes");
    }
  }

  static void noScopeIsExact() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIA" + agentCount(loc), exp, null))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      key(cache, "s3://b/dir/x");
      key(cache, "s3://b/dir/x");
      expectEquals(1, agent.requests.get(), "same location");
      key(cache, "s3://b/dir/x/y");
      expectEquals(2, agent.requests.get(), "a location under an exact answer asks again");
      key(cache, "s3://b/dir/");
      expectEquals(3, agent.requests.get(), "a location above it too");
    }
  }

  static String agentCount(String loc) {
    return Integer.toHexString(loc.hashCode()).toUpperCase();
  }

  static void foreignScopeIgnored() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAX", exp, "s3://other-bucket/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      key(cache, "s3://b/a");
      key(cache, "s3://b/b");
      expectEquals(2, agent.requests.get(), "a scope of another bucket covers nothing");
      key(cache, "s3://b/a");
      expectEquals(2, agent.requests.get(), "but the location itself is cached");
    }
  }

  static void oneFetchInFlight() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAONE", exp, "s3://b/"))) {
      agent.delayMs = 300;
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      ExecutorService pool = Executors.newFixedThreadPool(16);
      try {
        List<Future<String>> results = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
          results.add(pool.submit(() -> key(cache, "s3://b/same/location")));
        }
        for (Future<String> f : results) {
          expectEquals("ASIAONE", f.get(), "every caller's answer");
        }
      } finally {
        pool.shutdownNow();
      }
      expectEquals(1, agent.requests.get(), "agent requests for 16 concurrent callers");
    }
  }

  static void refreshAhead() throws Exception {
    MovableClock clock = new MovableClock(T0);
    AtomicInteger generation = new AtomicInteger(1);
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAGEN" + generation.get(),
        clock.instant().plus(Duration.ofHours(1)), "s3://b/teamA/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      expectEquals("ASIAGEN1", key(cache, "s3://b/teamA/x"), "first");
      generation.set(2);
      clock.advance(Duration.ofMinutes(44).plusSeconds(59));
      expectEquals("ASIAGEN1", key(cache, "s3://b/teamA/y"), "cached at 15m01s left");
      expectEquals(1, agent.requests.get(), "requests before the refresh window");
      clock.advance(Duration.ofSeconds(1));
      expectEquals("ASIAGEN2", key(cache, "s3://b/teamA/z"), "refreshed at 15m left");
      expectEquals(2, agent.requests.get(), "requests after the refresh window");
      expectEquals("s3://b/teamA/", agent.locations.get(1), "a refresh asks for the scope");
      expectEquals(1, cache.size(), "the refreshed answer replaces the old one");
    }
  }

  static void failedRefreshServesCurrent() throws Exception {
    MovableClock clock = new MovableClock(T0);
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAOLD", exp, "s3://b/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      key(cache, "s3://b/x");
      agent.answer = loc -> new Reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
      clock.advance(Duration.ofMinutes(50));
      expectEquals("ASIAOLD", key(cache, "s3://b/y"), "served while the refresh fails");
      clock.advance(Duration.ofMinutes(10));
      AgentException e = expectAgentException(() -> key(cache, "s3://b/z"));
      expect(e.getMessage().contains("HTTP 503 CredentialsUnavailable: STS is failing"), e.getMessage());
    }
  }

  static void denyCached() throws Exception {
    MovableClock clock = new MovableClock(T0);
    try (FakeAgent agent = new FakeAgent(loc -> deny("s3://b/secret/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      AgentException first = expectAgentException(() -> key(cache, "s3://b/secret/a"));
      AgentException second = expectAgentException(() -> key(cache, "s3://b/secret/b"));
      expectEquals(1, agent.requests.get(), "one request for two denied locations in one scope");
      expect(first.getMessage().contains("refused credentials for s3://b/secret/a (user analyst): HTTP 403"
          + " AccessDenied: denied by rule secret (deny)"), first.getMessage());
      expectEquals(first.getMessage(), second.getMessage(), "the remembered deny says the same");
      expect(second.isDenial() && "s3://b/secret/".equals(second.scope()), "deny with scope");
      clock.advance(Duration.ofSeconds(31));
      expectAgentException(() -> key(cache, "s3://b/secret/c"));
      expectEquals(2, agent.requests.get(), "asked again after deny-cache");
    }
  }

  static void copyAcrossSessions() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/teamA/")
        ? creds("ASIATEAMA", exp, "s3://b/teamA/") : creds("ASIATEAMB", exp, "s3://b/teamB/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      RequestLocation within = RequestLocation.copy("CopyObject", "b", "teamA/x", "b", "teamA/y");
      expectEquals("ASIATEAMA", within.resolve(cache).value().accessKeyId(), "copy within one scope");
      RequestLocation across = RequestLocation.copy("CopyObject", "b", "teamA/x", "b", "teamB/y");
      AgentException e = expectAgentException(() -> across.resolve(cache));
      expect(e.getMessage().startsWith("CopyObject from s3://b/teamA/x to s3://b/teamB/y needs one set of"
          + " credentials for both"), e.getMessage());
      expect(e.getMessage().contains("ASIATEAMA (arn:aws:iam::222222222222:role/ASIATEAMA) for the source"),
          e.getMessage());
      expect(e.getMessage().contains("ASIATEAMB (arn:aws:iam::222222222222:role/ASIATEAMB) for the destination"),
          e.getMessage());
    }
  }

  static void bulkAcrossSessions() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/teamA/")
        ? creds("ASIATEAMA", exp, "s3://b/teamA/") : creds("ASIAROOT", exp, null))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      RequestLocation same = RequestLocation.bulk("DeleteObjects", "b", Arrays.asList("teamA/x/1", "teamA/x/2"));
      expectEquals("s3://b/teamA/x/", same.location(), "located at the common prefix");
      expectEquals("ASIATEAMA", same.resolve(cache).value().accessKeyId(), "one session");
      RequestLocation mixed = RequestLocation.bulk("DeleteObjects", "b", Arrays.asList("teamA/x", "teamB/y"));
      expectEquals("s3://b/team", mixed.location(), "common prefix");
      AgentException e = expectAgentException(() -> mixed.resolve(cache));
      expect(e.getMessage().startsWith("DeleteObjects of 2 objects under s3://b/team needs one set of credentials"),
          e.getMessage());
      expect(RequestLocation.of("HeadBucket", "b", "") == null, "no key: bucket level");
    }
  }

  static void json() {
    expectEquals("a\"b\\c/d\ne\u00e9", Json.stringMembers(
        "{\"k\":\"a\\\"b\\\\c\\/d\\ne\\u00e9\",\"n\":12.5e3,\"t\":true,\"z\":null,\"o\":{\"x\":[1,\"y\"]}}")
        .get("k"), "escapes");
    expectEquals(1, Json.stringMembers(" { \"only\" : \"one\" } ").size(), "string members only");
    for (String bad : new String[] {"", "[]", "{\"a\":}", "{\"a\":\"" + SECRET + "\"", "{\"a\":\"x\"} trailing",
        "{\"a\":nope}"}) {
      try {
        Json.stringMembers(bad);
        throw new AssertionError("accepted " + bad.length() + " chars of bad JSON");
      } catch (IllegalArgumentException e) {
        expect(!e.getMessage().contains(SECRET), "the error echoes the input");
      }
    }
  }

  static void locations() {
    expectEquals("s3://b/k/x", S3Locations.normalise("S3A://b/k/x"), "s3a");
    expectEquals("s3://b/", S3Locations.normalise("s3n://b"), "bucket only");
    expectEquals(null, S3Locations.normalise("hdfs://b/x"), "not S3");
    expectEquals(null, S3Locations.normalise("s3:///x"), "no bucket");
    expectEquals("b", S3Locations.bucketOf("s3://b/k"), "bucket");
    expectEquals("b", S3Locations.bucketOf("s3://b"), "bucket without slash");
    expectEquals("dir/pa", S3Locations.commonPrefix(Arrays.asList("dir/part-1", "dir/pa", "dir/part-2")), "prefix");
    expectEquals("", S3Locations.commonPrefix(Collections.<String>emptyList()), "none");
  }

  static void noSecrets() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAX", exp, "s3://b/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      ScopeCache.Entry<AgentCredentials> entry = cache.get("s3://b/x");
      String shown = entry.toString() + entry.value().toString() + entry.value().describe();
      expect(shown.contains("ASIAX"), "names the key id");
      expect(!shown.contains(SECRET) && !shown.contains(SESSION_TOKEN), "toString leaks a secret");
      agent.answer = loc -> new Reply(200, "{\"AccessKeyId\":\"ASIAY\",\"SecretAccessKey\":\"" + SECRET
          + "\",\"Token\":\"" + SESSION_TOKEN + "\",\"Expiration\":\"not a time\"}");
      AgentException e = expectAgentException(() -> cache.get("s3://other/x"));
      agent.answer = loc -> new Reply(200, "{\"SecretAccessKey\":\"" + SECRET + "\",\"Token\":\"" + SESSION_TOKEN
          + "\"");
      AgentException e2 = expectAgentException(() -> cache.get("s3://other/y"));
      for (AgentException x : Arrays.asList(e, e2)) {
        expect(!x.getMessage().contains(SECRET) && !x.getMessage().contains(SESSION_TOKEN),
            "exception leaks a secret: " + x.getMessage().length());
      }
    }
  }
}
