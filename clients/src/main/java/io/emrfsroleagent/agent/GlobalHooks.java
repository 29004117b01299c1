package io.emrfsroleagent.agent;

import java.time.Clock;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * What the JVM-wide hooks of one SDK share (the SDK creates a hook per client; a job may build many clients):
 * the settings, read once from {@link ClientProperties}, and one {@link ScopeCache} per user, the user being the
 * one a client was built by ({@link ClientUser}: its Hadoop user, or without Hadoop the process's OS user).
 *
 * <p>Invalid settings (an endpoint that is not an http URL, an unreadable properties file) do not stop the SDK
 * from building clients: every S3 request that needs the agent fails with the reason instead (fail closed: the
 * hooks are on the class path because the node is meant to use the agent).
 */
public final class GlobalHooks<T> {
  private final ClientProperties.Resolved resolved;
  private final RuntimeException invalid;
  private final AgentClient client;
  private final Function<AgentCredentials, T> convert;
  private final Clock clock;
  private final ScopeCache<T> processUser;
  private final ConcurrentHashMap<String, ScopeCache<T>> byUser = new ConcurrentHashMap<>();

  public GlobalHooks(Supplier<ClientProperties.Resolved> settings, Function<AgentCredentials, T> convert,
      Clock clock) {
    ClientProperties.Resolved r = null;
    RuntimeException bad = null;
    try {
      r = settings.get();
    } catch (RuntimeException e) {
      bad = e;
    }
    this.resolved = r;
    this.invalid = bad;
    this.client = r == null ? null : new AgentClient(r.settings);
    this.convert = convert;
    this.clock = clock;
    this.processUser = client == null ? null : new ScopeCache<>(client, null, convert, clock);
  }

  /** Settings from this process ({@link ClientProperties#load}). */
  public static <T> GlobalHooks<T> forThisJvm(Function<AgentCredentials, T> convert) {
    return new GlobalHooks<>(ClientProperties::load, convert, Clock.systemUTC());
  }

  /**
   * The cache of {@code user}'s client. Throws {@link AgentException} when the settings are invalid or the
   * client's Hadoop user could not be determined.
   */
  public ScopeCache<T> cache(ClientUser user) {
    if (invalid != null) {
      throw new AgentException("emrfs-role-agent JVM-wide S3 hooks (emrfs-role-agent-hooks.jar) cannot ask the"
          + " agent: " + invalid.getMessage(), 0, "InvalidSettings", null, null);
    }
    String u = user.name();
    if (u == null) {
      return processUser;
    }
    ScopeCache<T> c = byUser.get(u);
    return c != null ? c : byUser.computeIfAbsent(u, k -> new ScopeCache<>(client, k, convert, clock));
  }

  /**
   * {@code e} with where the settings came from, when it is not the agent's decision (the agent could not be
   * reached, the token file is missing, ...): the hooks have no Hadoop configuration that would tell.
   */
  public AgentException explain(AgentException e) {
    if (e.status() == 403 || resolved == null) {
      return e;
    }
    return new AgentException(e.getMessage() + " [JVM-wide S3 hooks, emrfs-role-agent-hooks.jar: " + resolved.origin
        + "]", e.status(), e.code(), e.scope(), e);
  }

  @Override
  public String toString() {
    return "GlobalHooks{" + (resolved == null ? "invalid settings" : resolved.settings + "; " + resolved.origin)
        + ", users=" + byUser.size() + "}";
  }
}
