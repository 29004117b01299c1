package io.emrfsroleagent.agent;


import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
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
 * with {@code Scope} (or without, as agents before it did), with a hand-moved clock.
 */
final class ScopeCacheTest {
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

  static ScopeCache.Entry<AgentCredentials> read(ScopeCache<AgentCredentials> cache, String location) {
    return cache.get(location, Access.READ);
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
        read(cache, "s3://lake/" + k);
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
  @DisplayName("a literal Scope covers literal keys, and only those")
  void literalScopes() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://lake/caf\u00e9/")
        ? creds("ASIACAFE", exp, "s3://lake/caf\u00e9/")
        : loc.startsWith("s3://lake/x%2Fy/") ? creds("ASIAXY", exp, "s3://lake/x%2Fy/")
        : creds("ASIAOTHER", exp, loc))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      assertEquals("ASIACAFE", read(cache, "s3://lake/caf\u00e9/a").value().accessKeyId(), "caf\u00e9");
      assertEquals("ASIACAFE", read(cache, "s3://lake/caf\u00e9/b/c").value().accessKeyId(), "under caf\u00e9");
      assertEquals(1, agent.requests.get(), "a non-ASCII scope is a hit for the next key under it");
      assertEquals("ASIAXY", read(cache, "s3://lake/x%2Fy/secret/f").value().accessKeyId(), "x%2Fy");
      assertEquals("ASIAOTHER", read(cache, "s3://lake/x/y/secret/f").value().accessKeyId(),
          "s3://lake/x%2Fy/ does not cover s3://lake/x/y/");
      assertEquals(3, agent.requests.get(), "agent requests");
      assertEquals("s3://lake/caf\u00e9/", S3Locations.normalise("s3a://lake/caf\u00e9/"), "normalise keeps");
      assertEquals("s3://lake/x%2Fy/%25/", S3Locations.normalise("S3://lake/x%2Fy/%25/"), "normalise decodes nothing");
    }
  }

  @Test
  @DisplayName("access is sent, and a scope holds for its access only")
  void scopesPerAccess() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent()) {
      agent.answerQuery = q -> creds("write".equals(q.get("access")) ? "ASIAWRITE" : "read".equals(q.get("access"))
          ? "ASIAREAD" : "ASIAANY", exp, "s3://b/teamA/");
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      assertEquals("ASIAREAD", cache.get("s3://b/teamA/x", Access.READ).value().accessKeyId(), "read");
      assertEquals("ASIAWRITE", cache.get("s3://b/teamA/y", Access.WRITE).value().accessKeyId(),
          "a read scope does not serve a write");
      assertEquals("ASIAREAD", cache.get("s3://b/teamA/z", Access.READ).value().accessKeyId(), "read again");
      assertEquals("ASIAWRITE", cache.get("s3://b/teamA/w", Access.WRITE).value().accessKeyId(), "write again");
      assertEquals("ASIAANY", cache.get("s3://b/teamA/v").value().accessKeyId(), "no access: its own scope");
      assertEquals(3, agent.requests.get(), "one request per access");
      assertEquals(Arrays.asList("read", "write", null), agent.accesses, "access sent");
      assertTrue(agent.rawQueries.get(0).endsWith("&user=analyst&access=read"), agent.rawQueries.get(0));
      assertTrue(!agent.rawQueries.get(2).contains("access="), agent.rawQueries.get(2));
      assertEquals(Access.READ, Access.ofOperation("GetObject"), "GetObject");
      assertEquals(Access.READ, Access.ofOperation("HeadObject"), "HeadObject");
      assertEquals(Access.READ, Access.ofOperation("ListObjectsV2"), "ListObjectsV2");
      assertEquals(Access.READ, Access.ofOperation("GetObjectTagging"), "GetObjectTagging");
      assertEquals(Access.WRITE, Access.ofOperation("PutObject"), "PutObject");
      assertEquals(Access.WRITE, Access.ofOperation("DeleteObjects"), "DeleteObjects");
      assertEquals(Access.WRITE, Access.ofOperation("CompleteMultipartUpload"), "CompleteMultipartUpload");
      assertEquals(Access.WRITE, Access.ofOperation(null), "unknown");
    }
  }

  @Test
  @DisplayName("a copy asks read for its source and write for its destination")
  void copyAccess() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIATEAMA", exp, "s3://b/teamA/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      RequestLocation copy = RequestLocation.copy("CopyObject", "b", "teamA/x", "b", "teamA/y");
      assertEquals(Access.WRITE, copy.access(), "destination access");
      copy.resolve(cache);
      assertEquals(Arrays.asList("s3://b/teamA/y", "s3://b/teamA/x"), agent.locations, "asked");
      assertEquals(Arrays.asList("write", "read"), agent.accesses, "destination write, source read");
      RequestLocation delete = RequestLocation.bulk("DeleteObjects", "b", Arrays.asList("teamA/1", "teamA/2"));
      assertEquals(Access.WRITE, delete.access(), "a bulk delete writes");
    }
  }

  @Test
  @DisplayName("a refresh whose answer no longer covers the location asks for the location")
  void refreshNarrowed() throws Exception {
    MovableClock clock = new MovableClock(T0);
    AtomicInteger reloaded = new AtomicInteger(0);
    try (FakeAgent agent = new FakeAgent(loc -> {
      Instant exp = clock.instant().plus(Duration.ofHours(1));
      if (reloaded.get() == 0) {
        return creds("ASIAA", exp, "s3://b/exports/"); // allow roleA s3://b/exports/
      }
      // After a reload added deny s3://b/exports/secret/ above it:
      if (loc.startsWith("s3://b/exports/secret/")) {
        return deny("s3://b/exports/secret/");
      }
      if (loc.equals("s3://b/exports/")) {
        return creds("ASIAA2", exp, null); // no prefix of it is decided one way any more
      }
      return creds("ASIAA2", exp, "s3://b/exports/2");
    })) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      assertEquals("ASIAA", read(cache, "s3://b/exports/secret/f").value().accessKeyId(), "before the reload");
      assertEquals("ASIAA", read(cache, "s3://b/exports/2026/a").value().accessKeyId(), "same scope");
      assertEquals(1, agent.requests.get(), "one scope");
      reloaded.set(1);
      clock.advance(Duration.ofMinutes(45));
      AgentException e = expectAgentException(() -> read(cache, "s3://b/exports/secret/f"));
      assertTrue(e.isDenial() && e.getMessage().contains("HTTP 403 AccessDenied"), e.getMessage());
      assertEquals(Arrays.asList("s3://b/exports/secret/f", "s3://b/exports/", "s3://b/exports/secret/f"),
          agent.locations, "the refresh asked for the scope, then for the location");
      assertEquals("ASIAA2", read(cache, "s3://b/exports/2026/b").value().accessKeyId(), "the rest: new answer");
      assertEquals("ASIAA2", read(cache, "s3://b/exports/2027/c").value().accessKeyId(), "under its scope");
      expectAgentException(() -> read(cache, "s3://b/exports/secret/g"));
      assertEquals(4, agent.requests.get(), "the old scope is gone: no refresh per request");
    }
  }

  @Test
  @DisplayName("a refresh refused for the old scope as a whole still asks for the location")
  void refreshRefusedScope() throws Exception {
    MovableClock clock = new MovableClock(T0);
    AtomicInteger reloaded = new AtomicInteger(0);
    try (FakeAgent agent = new FakeAgent(loc -> {
      Instant exp = clock.instant().plus(Duration.ofHours(1));
      if (reloaded.get() == 0) {
        return creds("ASIAOLD", exp, "s3://b/data/");
      }
      // The reload denies s3://b/data/ itself (a deny on exactly that key), allows what is under it.
      return loc.equals("s3://b/data/") ? deny(null) : creds("ASIANEW", exp, "s3://b/data/x/");
    })) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      assertEquals("ASIAOLD", read(cache, "s3://b/data/x/1").value().accessKeyId(), "before");
      reloaded.set(1);
      clock.advance(Duration.ofMinutes(45));
      assertEquals("ASIANEW", read(cache, "s3://b/data/x/2").value().accessKeyId(), "asked for the location");
      assertEquals(Arrays.asList("s3://b/data/x/1", "s3://b/data/", "s3://b/data/x/2"), agent.locations, "asked");
    }
  }

  @Test
  @DisplayName("a refresh refused by a deny over the location fails, and the old credentials are gone")
  void refreshDenied() throws Exception {
    MovableClock clock = new MovableClock(T0);
    AtomicInteger reloaded = new AtomicInteger(0);
    try (FakeAgent agent = new FakeAgent(loc -> reloaded.get() == 0
        ? creds("ASIAOLD", clock.instant().plus(Duration.ofHours(1)), "s3://b/data/")
        : deny("s3://b/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      read(cache, "s3://b/data/1");
      reloaded.set(1);
      clock.advance(Duration.ofMinutes(45));
      expectAgentException(() -> read(cache, "s3://b/data/2"));
      expectAgentException(() -> read(cache, "s3://b/data/3"));
      assertEquals(2, agent.requests.get(), "the deny for s3://b/ is remembered; the old credentials are not served");
      clock.advance(Duration.ofSeconds(31));
      reloaded.set(2);
      agent.answer = loc -> new Reply(401, "{\"code\":\"Unauthorized\",\"message\":\"token\"}");
      expectAgentException(() -> read(cache, "s3://b/data/4"));
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

  @Test
  @DisplayName("a deny Scope that does not contain the location is not remembered for it")
  void foreignDenyScope() throws Exception {
    try (FakeAgent agent = new FakeAgent(loc -> deny("s3://b/other/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      AgentException e = expectAgentException(() -> read(cache, "s3://b/mine/x"));
      assertEquals(null, e.scope(), "a deny scope not containing the location");
      expectAgentException(() -> read(cache, "s3://b/other/y"));
      assertEquals(2, agent.requests.get(), "nothing remembered for s3://b/other/ from it");
    }
  }

  @Test
  @DisplayName("per-request hook wiring read from the Hadoop configuration")
  void hookWiring() throws Exception {
    String handler = "io.emrfsroleagent.emrfs.RoleAgentRequestHandler";
    java.net.URI s3a = new java.net.URI("s3a://lake/");
    java.net.URI s3 = new java.net.URI("s3://lake/");
    Configuration conf = new Configuration(false);
    assertTrue(!HookWiring.perRequestHook(conf, s3a, HookWiring.V1_HANDLERS_KEY, handler), "nothing configured");
    conf.set(HookWiring.V1_HANDLERS_KEY, "some.Other, " + handler);
    assertTrue(HookWiring.perRequestHook(conf, s3a, HookWiring.V1_HANDLERS_KEY, handler), "listed, audit default on");
    assertTrue(!HookWiring.perRequestHook(conf, s3a, HookWiring.V2_INTERCEPTORS_KEY, handler), "the other key");
    assertTrue(!HookWiring.perRequestHook(conf, s3, HookWiring.V1_HANDLERS_KEY, handler), "s3 without an impl");
    conf.set("fs.s3.impl", "com.amazon.ws.emr.hadoop.fs.EmrFileSystem");
    assertTrue(!HookWiring.perRequestHook(conf, s3, HookWiring.V1_HANDLERS_KEY, handler), "EMRFS");
    conf.set("fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem");
    assertTrue(HookWiring.perRequestHook(conf, s3, HookWiring.V1_HANDLERS_KEY, handler), "s3 through S3A (EMR 7.10)");
    conf.setBoolean(HookWiring.AUDIT_ENABLED_KEY, false);
    assertTrue(!HookWiring.perRequestHook(conf, s3a, HookWiring.V1_HANDLERS_KEY, handler), "auditing off");
    assertTrue(!HookWiring.perRequestHook(conf, null, HookWiring.V1_HANDLERS_KEY, handler), "no URI");
    assertTrue(!HookWiring.placeholderSecret().isEmpty()
        && HookWiring.placeholderSecret().equals(HookWiring.placeholderSecret()), "one secret per JVM");
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

  @Test
  @DisplayName("one answer serves every location under its Scope")
  void scopeServesPrefix() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/teamA/")
        ? creds("ASIATEAMA", exp, "s3://b/teamA/") : creds("ASIAOTHER", exp, loc))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      for (int i = 0; i < 1000; i++) {
        assertEquals("ASIATEAMA", key(cache, "s3://b/teamA/part-" + i), "under the scope");
      }
      assertEquals(1, agent.requests.get(), "agent requests for 1000 locations under one scope");
      assertEquals("ASIAOTHER", key(cache, "s3://b/teamB/x"), "outside the scope");
      assertEquals(2, agent.requests.get(), "agent requests");
      assertEquals(Arrays.asList("s3://b/teamA/part-0", "s3://b/teamB/x"), agent.locations, "locations asked");
    }
  }

  @Test
  @DisplayName("the longest matching scope wins")
  void longestScopeWins() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/exports/secret/")
        ? creds("ASIASECRET", exp, "s3://b/exports/secret/") : creds("ASIAEXPORTS", exp, "s3://b/exports/2"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      assertEquals("ASIAEXPORTS", key(cache, "s3://b/exports/2026/a"), "exports");
      assertEquals("ASIASECRET", key(cache, "s3://b/exports/secret/x"), "secret: not under s3://b/exports/2");
      assertEquals("ASIASECRET", key(cache, "s3://b/exports/secret/y"), "secret again");
      assertEquals("ASIAEXPORTS", key(cache, "s3://b/exports/2027/b"), "exports again");
      assertEquals(2, agent.requests.get(), "agent requests");
      assertEquals(2, cache.size(), "scopes");
    }
  }

  @Test
  @DisplayName("without Scope an answer holds for exactly its location")
  void noScopeIsExact() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIA" + agentCount(loc), exp, null))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      key(cache, "s3://b/dir/x");
      key(cache, "s3://b/dir/x");
      assertEquals(1, agent.requests.get(), "same location");
      key(cache, "s3://b/dir/x/y");
      assertEquals(2, agent.requests.get(), "a location under an exact answer asks again");
      key(cache, "s3://b/dir/");
      assertEquals(3, agent.requests.get(), "a location above it too");
    }
  }

  static String agentCount(String loc) {
    return Integer.toHexString(loc.hashCode()).toUpperCase();
  }

  @Test
  @DisplayName("a Scope that does not contain the location is not trusted")
  void foreignScopeIgnored() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAX", exp, "s3://other-bucket/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      key(cache, "s3://b/a");
      key(cache, "s3://b/b");
      assertEquals(2, agent.requests.get(), "a scope of another bucket covers nothing");
      key(cache, "s3://b/a");
      assertEquals(2, agent.requests.get(), "but the location itself is cached");
    }
  }

  @Test
  @DisplayName("concurrent misses for one location share one request")
  void oneFetchInFlight() throws Exception {
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
          assertEquals("ASIAONE", f.get(), "every caller's answer");
        }
      } finally {
        pool.shutdownNow();
      }
      assertEquals(1, agent.requests.get(), "agent requests for 16 concurrent callers");
    }
  }

  @Test
  @DisplayName("refreshes ahead of expiry, asking for the scope")
  void refreshAhead() throws Exception {
    MovableClock clock = new MovableClock(T0);
    AtomicInteger generation = new AtomicInteger(1);
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAGEN" + generation.get(),
        clock.instant().plus(Duration.ofHours(1)), "s3://b/teamA/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      assertEquals("ASIAGEN1", key(cache, "s3://b/teamA/x"), "first");
      generation.set(2);
      clock.advance(Duration.ofMinutes(44).plusSeconds(59));
      assertEquals("ASIAGEN1", key(cache, "s3://b/teamA/y"), "cached at 15m01s left");
      assertEquals(1, agent.requests.get(), "requests before the refresh window");
      clock.advance(Duration.ofSeconds(1));
      assertEquals("ASIAGEN2", key(cache, "s3://b/teamA/z"), "refreshed at 15m left");
      assertEquals(2, agent.requests.get(), "requests after the refresh window");
      assertEquals("s3://b/teamA/", agent.locations.get(1), "a refresh asks for the scope");
      assertEquals(1, cache.size(), "the refreshed answer replaces the old one");
    }
  }

  @Test
  @DisplayName("a failed refresh serves the current credentials until they expire")
  void failedRefreshServesCurrent() throws Exception {
    MovableClock clock = new MovableClock(T0);
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAOLD", exp, "s3://b/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      key(cache, "s3://b/x");
      agent.answer = loc -> new Reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
      clock.advance(Duration.ofMinutes(50));
      assertEquals("ASIAOLD", key(cache, "s3://b/y"), "served while the refresh fails");
      clock.advance(Duration.ofMinutes(10));
      AgentException e = expectAgentException(() -> key(cache, "s3://b/z"));
      assertTrue(e.getMessage().contains("HTTP 503 CredentialsUnavailable: STS is failing"), e.getMessage());
    }
  }

  @Test
  @DisplayName("a deny with Scope is remembered for deny-cache")
  void denyCached() throws Exception {
    MovableClock clock = new MovableClock(T0);
    try (FakeAgent agent = new FakeAgent(loc -> deny("s3://b/secret/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, clock);
      AgentException first = expectAgentException(() -> key(cache, "s3://b/secret/a"));
      AgentException second = expectAgentException(() -> key(cache, "s3://b/secret/b"));
      assertEquals(1, agent.requests.get(), "one request for two denied locations in one scope");
      assertTrue(first.getMessage().contains("refused credentials for s3://b/secret/a (user analyst): HTTP 403"
          + " AccessDenied: denied by rule secret (deny)"), first.getMessage());
      assertEquals(first.getMessage(), second.getMessage(), "the remembered deny says the same");
      assertTrue(second.isDenial() && "s3://b/secret/".equals(second.scope()), "deny with scope");
      clock.advance(Duration.ofSeconds(31));
      expectAgentException(() -> key(cache, "s3://b/secret/c"));
      assertEquals(2, agent.requests.get(), "asked again after deny-cache");
    }
  }

  @Test
  @DisplayName("a copy across sessions fails naming both; within one it runs")
  void copyAcrossSessions() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/teamA/")
        ? creds("ASIATEAMA", exp, "s3://b/teamA/") : creds("ASIATEAMB", exp, "s3://b/teamB/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      RequestLocation within = RequestLocation.copy("CopyObject", "b", "teamA/x", "b", "teamA/y");
      assertEquals("ASIATEAMA", within.resolve(cache).value().accessKeyId(), "copy within one scope");
      RequestLocation across = RequestLocation.copy("CopyObject", "b", "teamA/x", "b", "teamB/y");
      AgentException e = expectAgentException(() -> across.resolve(cache));
      assertTrue(e.getMessage().startsWith("CopyObject from s3://b/teamA/x to s3://b/teamB/y needs one set of"
          + " credentials for both"), e.getMessage());
      assertTrue(e.getMessage().contains("ASIATEAMA (arn:aws:iam::222222222222:role/ASIATEAMA) for the source"),
          e.getMessage());
      assertTrue(e.getMessage().contains("ASIATEAMB (arn:aws:iam::222222222222:role/ASIATEAMB) for the destination"),
          e.getMessage());
    }
  }

  @Test
  @DisplayName("a bulk delete across sessions fails")
  void bulkAcrossSessions() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> loc.startsWith("s3://b/teamA/")
        ? creds("ASIATEAMA", exp, "s3://b/teamA/") : creds("ASIAROOT", exp, null))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      RequestLocation same = RequestLocation.bulk("DeleteObjects", "b", Arrays.asList("teamA/x/1", "teamA/x/2"));
      assertEquals("s3://b/teamA/x/", same.location(), "located at the common prefix");
      assertEquals("ASIATEAMA", same.resolve(cache).value().accessKeyId(), "one session");
      RequestLocation mixed = RequestLocation.bulk("DeleteObjects", "b", Arrays.asList("teamA/x", "teamB/y"));
      assertEquals("s3://b/team", mixed.location(), "common prefix");
      AgentException e = expectAgentException(() -> mixed.resolve(cache));
      assertTrue(e.getMessage().startsWith("DeleteObjects of 2 objects under s3://b/team needs one set of credentials"),
          e.getMessage());
      assertEquals("s3://b/", RequestLocation.of("HeadBucket", "b", "").location(), "no key: the bucket root");
      assertEquals(Access.READ, RequestLocation.of("HeadBucket", "b", null).access(), "HeadBucket reads");
      assertTrue(RequestLocation.of("ListBuckets", null, null) == null, "no bucket: nothing to decide");
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
  @DisplayName("locations: s3a/s3n become s3; bucket roots; common prefixes")
  void locations() {
    assertEquals("s3://b/k/x", S3Locations.normalise("S3A://b/k/x"), "s3a");
    assertEquals("s3://b/", S3Locations.normalise("s3n://b"), "bucket only");
    assertEquals(null, S3Locations.normalise("hdfs://b/x"), "not S3");
    assertEquals(null, S3Locations.normalise("s3:///x"), "no bucket");
    assertEquals("b", S3Locations.bucketOf("s3://b/k"), "bucket");
    assertEquals("b", S3Locations.bucketOf("s3://b"), "bucket without slash");
    assertEquals("dir/pa", S3Locations.commonPrefix(Arrays.asList("dir/part-1", "dir/pa", "dir/part-2")), "prefix");
    assertEquals("", S3Locations.commonPrefix(Collections.<String>emptyList()), "none");
  }

  @Test
  @DisplayName("toString and exception messages never contain secrets")
  void noSecrets() throws Exception {
    Instant exp = T0.plus(Duration.ofHours(1));
    try (FakeAgent agent = new FakeAgent(loc -> creds("ASIAX", exp, "s3://b/"))) {
      ScopeCache<AgentCredentials> cache = scopeCache(agent, new MovableClock(T0));
      ScopeCache.Entry<AgentCredentials> entry = cache.get("s3://b/x");
      String shown = entry.toString() + entry.value().toString() + entry.value().describe();
      assertTrue(shown.contains("ASIAX"), "names the key id");
      assertTrue(!shown.contains(SECRET) && !shown.contains(SESSION_TOKEN), "toString leaks a secret");
      agent.answer = loc -> new Reply(200, "{\"AccessKeyId\":\"ASIAY\",\"SecretAccessKey\":\"" + SECRET
          + "\",\"Token\":\"" + SESSION_TOKEN + "\",\"Expiration\":\"not a time\"}");
      AgentException e = expectAgentException(() -> cache.get("s3://other/x"));
      agent.answer = loc -> new Reply(200, "{\"SecretAccessKey\":\"" + SECRET + "\",\"Token\":\"" + SESSION_TOKEN
          + "\"");
      AgentException e2 = expectAgentException(() -> cache.get("s3://other/y"));
      for (AgentException x : Arrays.asList(e, e2)) {
        assertTrue(!x.getMessage().contains(SECRET) && !x.getMessage().contains(SESSION_TOKEN),
            "exception leaks a secret: " + x.getMessage().length());
      }
    }
  }
}
