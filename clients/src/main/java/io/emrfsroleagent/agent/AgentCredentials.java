package io.emrfsroleagent.agent;

import java.time.Instant;

/**
 * Credentials the agent handed out, with the role and the scope they are good for.
 * {@link #toString()} names the access key id and the role only, never the secret key or the session token.
 */
public final class AgentCredentials {
  private final String accessKeyId;
  private final String secretAccessKey;
  private final String sessionToken;
  private final Instant expiration;
  private final String roleArn;

  public AgentCredentials(String accessKeyId, String secretAccessKey, String sessionToken, Instant expiration,
      String roleArn) {
    this.accessKeyId = accessKeyId;
    this.secretAccessKey = secretAccessKey;
    this.sessionToken = sessionToken;
    this.expiration = expiration;
    this.roleArn = roleArn;
  }

  public String accessKeyId() {
    return accessKeyId;
  }

  public String secretAccessKey() {
    return secretAccessKey;
  }

  /** Null for long-term keys (an instance-profile fallback fed by static keys). */
  public String sessionToken() {
    return sessionToken;
  }

  public Instant expiration() {
    return expiration;
  }

  /** Null for the instance-profile fallback. */
  public String roleArn() {
    return roleArn;
  }

  /** Same session: the same access key (a session's keys never change while it lives). */
  public boolean sameSessionAs(AgentCredentials other) {
    return accessKeyId.equals(other.accessKeyId);
  }

  /** What a log line or a message may show: the key id names the session in CloudTrail; nothing secret. */
  public String describe() {
    return accessKeyId + (roleArn == null ? " (no role: the agent's fallback)" : " (" + roleArn + ")");
  }

  @Override
  public String toString() {
    return "AgentCredentials{accessKeyId=" + accessKeyId + ", roleArn=" + roleArn + ", expiration=" + expiration
        + "}";
  }
}
