package io.emrfsroleagent.agent;

import static io.emrfsroleagent.agent.AgentAnswers.T0;
import static io.emrfsroleagent.agent.AgentAnswers.creds;
import static io.emrfsroleagent.agent.AgentAnswers.expectAgentException;
import static io.emrfsroleagent.agent.AgentAnswers.scopeCache;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * Where a request is located and with which access ({@link RequestLocation}): copies read their source and
 * write their destination, and one request that two sessions would have to sign fails naming both.
 */
final class RequestLocationTest {
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
}
