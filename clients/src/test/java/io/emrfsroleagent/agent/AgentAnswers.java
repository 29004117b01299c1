package io.emrfsroleagent.agent;

import io.emrfsroleagent.testing.FakeAgent.Reply;
import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.time.Instant;
import org.apache.hadoop.conf.Configuration;

/** The fake agent's answers for the agent package's tests, and a scope cache that asks it. */
final class AgentAnswers {
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

  static AgentException expectAgentException(Runnable r) {
    try {
      r.run();
    } catch (AgentException e) {
      return e;
    }
    throw new AssertionError("expected an AgentException");
  }

  private AgentAnswers() {}
}
