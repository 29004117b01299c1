package io.emrfsroleagent.agent;

import static io.emrfsroleagent.agent.AgentAnswers.SECRET;
import static io.emrfsroleagent.agent.AgentAnswers.SESSION_TOKEN;
import static io.emrfsroleagent.agent.AgentAnswers.T0;
import static io.emrfsroleagent.agent.AgentAnswers.creds;
import static io.emrfsroleagent.agent.AgentAnswers.deny;
import static io.emrfsroleagent.agent.AgentAnswers.expectAgentException;
import static io.emrfsroleagent.agent.AgentAnswers.scopeCache;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.testing.FakeAgent.Reply;
import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The scope cache against an in-process fake agent that answers with {@code Scope} (or without, as agents before
 * it did), with a hand-moved clock: answers kept by access and scope, longest match, one request in flight,
 * refresh ahead, denies remembered.
 */
final class ScopeCacheTest {
  static ScopeCache.Entry<AgentCredentials> read(ScopeCache<AgentCredentials> cache, String location) {
    return cache.get(location, Access.READ);
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

  static String key(ScopeCache<AgentCredentials> cache, String location) {
    return cache.get(location).value().accessKeyId();
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
