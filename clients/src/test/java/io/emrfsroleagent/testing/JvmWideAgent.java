package io.emrfsroleagent.testing;

import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * The one fake agent the JVM-wide hooks of a test JVM ask: they read their settings once per JVM
 * ({@code ClientProperties}, from system properties here) and keep one scope cache per user for the JVM, so every
 * test of them shares this agent, started at first use and never stopped. Each test calls {@link #reset} first
 * and uses buckets of its own (the caches outlive a test).
 */
public final class JvmWideAgent {
  private static FakeAgent agent;

  private JvmWideAgent() {}

  /** The agent, with the system properties that point the JVM-wide hooks at it (no token, no properties file). */
  public static synchronized FakeAgent get() {
    if (agent == null) {
      try {
        agent = new FakeAgent();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      System.setProperty("emrfs-role-agent.endpoint", agent.endpoint());
      System.setProperty("emrfs-role-agent.token-file", "");
      System.setProperty("emrfs-role-agent.client-properties", "/nonexistent/client.properties");
    }
    return agent;
  }

  /** {@link #get}, reset for a new test. */
  public static FakeAgent reset() {
    FakeAgent a = get();
    a.reset();
    return a;
  }
}
