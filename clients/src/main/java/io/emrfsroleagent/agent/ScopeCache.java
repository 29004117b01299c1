package io.emrfsroleagent.agent;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's answers for one user, kept by the {@code Scope} they hold for (SPEC §5), so that one answer
 * serves every S3 request under its scope.
 *
 * <ul>
 *   <li>Lookup: the longest cached scope that the location starts with. An answer without {@code Scope} (an
 *       agent that predates it) holds for exactly the location asked for.</li>
 *   <li>A miss asks the agent; concurrent misses for one location share that one request (they wait on its
 *       future, no polling).</li>
 *   <li>Credentials are asked for again {@code refresh-before-expiry} ahead of expiry (at least a minute after
 *       they arrived, as the bucket-level provider does); one caller refreshes (asking with the scope as the
 *       location), the others keep using the current ones meanwhile. If the refresh fails, the current ones
 *       are served until they expire.</li>
 *   <li>A deny for a scope ({@code 403 AccessDenied} carrying {@code Scope}) is remembered for
 *       {@code deny-cache}, so a job hammering a denied prefix does not hammer the agent.</li>
 * </ul>
 *
 * <p>{@code T} is what the SDK wants (its credentials or provider type), made once per answer by
 * {@code convert}. Thread-safe; lookups take no lock.
 */
public final class ScopeCache<T> {
  private static final Logger LOG = LoggerFactory.getLogger(ScopeCache.class);

  /** Credentials that arrive inside the refresh window are kept at least this long. */
  static final Duration MIN_CACHE_TIME = Duration.ofMinutes(1);

  private final AgentClient client;
  private final String user;
  private final Function<AgentCredentials, T> convert;
  private final Clock clock;
  private final Duration refreshBefore;
  private final Duration denyCache;
  private final int maxScopesPerBucket;

  /** Per bucket: its entries, longest scope first (copy-on-write; replaced under {@code this}). */
  private final ConcurrentHashMap<String, Entry<T>[]> byBucket = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, CompletableFuture<Entry<T>>> inFlight = new ConcurrentHashMap<>();

  /** A cached answer: credentials, or a deny. */
  public static final class Entry<T> {
    final String scope;
    /** No {@code Scope} came with the answer: it holds for exactly {@link #scope} and nothing under it. */
    final boolean exact;
    final AgentCredentials credentials;
    final T value;
    final AgentException denial;
    final Instant refreshAt;
    final Instant expiresAt;

    Entry(String scope, boolean exact, AgentCredentials credentials, T value, AgentException denial,
        Instant refreshAt, Instant expiresAt) {
      this.scope = scope;
      this.exact = exact;
      this.credentials = credentials;
      this.value = value;
      this.denial = denial;
      this.refreshAt = refreshAt;
      this.expiresAt = expiresAt;
    }

    public String scope() {
      return scope;
    }

    /** Whether this answer holds for {@code location}. */
    public boolean covers(String location) {
      return exact ? location.equals(scope) : location.startsWith(scope);
    }

    public AgentCredentials credentials() {
      return credentials;
    }

    /** The SDK's form of {@link #credentials()}. */
    public T value() {
      return value;
    }

    @Override
    public String toString() {
      return "Entry{scope=" + scope + ", " + (credentials == null ? "denied" : credentials.toString()) + "}";
    }
  }

  public ScopeCache(AgentClient client, String user, Function<AgentCredentials, T> convert, Clock clock) {
    this.client = client;
    this.user = user;
    this.convert = convert;
    this.clock = clock;
    this.refreshBefore = client.settings().refreshBeforeExpiry;
    this.denyCache = client.settings().denyCache;
    this.maxScopesPerBucket = client.settings().maxScopes;
  }

  /** The user this cache asks for (null: the OS user of the process). */
  public String user() {
    return user;
  }

  /**
   * Credentials for {@code location} (normalised, {@code s3://bucket/key}); throws {@link AgentException} when
   * the agent cannot be reached or refuses.
   */
  public Entry<T> get(String location) {
    Instant now = clock.instant();
    Entry<T> cached = lookup(location, now);
    if (cached == null) {
      return fetch(location, null, now);
    }
    if (cached.denial != null) {
      throw copyOf(cached.denial);
    }
    if (now.isBefore(cached.refreshAt)) {
      return cached;
    }
    return fetch(cached.scope, cached, now);
  }

  /** How many scopes are cached (for tests and metrics). */
  public int size() {
    int n = 0;
    for (Entry<T>[] entries : byBucket.values()) {
      n += entries.length;
    }
    return n;
  }

  private Entry<T> lookup(String location, Instant now) {
    Entry<T>[] entries = byBucket.get(S3Locations.bucketOf(location));
    if (entries == null) {
      return null;
    }
    for (Entry<T> e : entries) {
      if (e.covers(location) && now.isBefore(e.expiresAt)) {
        return e; // longest first: the first match is the longest
      }
    }
    return null;
  }

  /**
   * Asks the agent for {@code location}, or waits for the request already asking; {@code current} (when
   * refreshing) is served to everyone but the one caller that asks, and if the asking fails.
   */
  private Entry<T> fetch(String location, Entry<T> current, Instant now) {
    CompletableFuture<Entry<T>> mine = new CompletableFuture<>();
    CompletableFuture<Entry<T>> running = inFlight.putIfAbsent(location, mine);
    if (running != null) {
      if (current != null) {
        return current;
      }
      try {
        return running.join();
      } catch (CompletionException e) {
        if (e.getCause() instanceof AgentException) {
          throw copyOf((AgentException) e.getCause());
        }
        throw e;
      }
    }
    try {
      Entry<T> fresh = load(location, now);
      mine.complete(fresh);
      return fresh;
    } catch (AgentException e) {
      if (e.isDenial()) {
        store(new Entry<T>(e.scope(), false, null, null, e, now.plus(denyCache), now.plus(denyCache)));
      }
      mine.completeExceptionally(e);
      if (current != null && !e.isDenial() && now.isBefore(current.credentials.expiration())) {
        LOG.warn("Refreshing credentials for {} failed; serving cached credentials {} until they expire at {}: {}",
            current.scope, current.credentials.accessKeyId(), current.credentials.expiration(), e.getMessage());
        return current;
      }
      throw e;
    } catch (RuntimeException | Error e) {
      mine.completeExceptionally(e);
      throw e;
    } finally {
      inFlight.remove(location, mine);
    }
  }

  private Entry<T> load(String location, Instant now) {
    AgentClient.Answer answer = client.fetch(location, user, now);
    String scope = answer.scope != null ? answer.scope : location;
    AgentCredentials creds = answer.credentials;
    Entry<T> entry = new Entry<>(scope, answer.scope == null, creds, convert.apply(creds), null,
        refreshAt(now, creds.expiration(), refreshBefore), creds.expiration());
    LOG.debug("Credentials {} for {} (user {}), scope {}, expiring at {}", creds.describe(), location, user,
        scope, creds.expiration());
    store(entry);
    return entry;
  }

  @SuppressWarnings("unchecked")
  private synchronized void store(Entry<T> entry) {
    String bucket = S3Locations.bucketOf(entry.scope);
    Entry<T>[] old = byBucket.get(bucket);
    Instant now = clock.instant();
    List<Entry<T>> kept = new ArrayList<>();
    if (old != null) {
      for (Entry<T> e : old) {
        if (!(e.scope.equals(entry.scope) && e.exact == entry.exact) && now.isBefore(e.expiresAt)) {
          kept.add(e);
        }
      }
    }
    while (kept.size() >= maxScopesPerBucket) {
      // Full: drop the one closest to expiry.
      Entry<T> first = kept.get(0);
      for (Entry<T> e : kept) {
        if (e.expiresAt.isBefore(first.expiresAt)) {
          first = e;
        }
      }
      kept.remove(first);
    }
    kept.add(entry);
    Entry<T>[] fresh = kept.toArray((Entry<T>[]) new Entry<?>[0]);
    Arrays.sort(fresh, Comparator.comparingInt((Entry<T> e) -> e.scope.length()).reversed());
    byBucket.put(bucket, fresh);
  }

  /**
   * When to ask again: {@code refreshBefore} ahead of expiry, but not sooner than {@link #MIN_CACHE_TIME}
   * (the bucket-level providers use it too).
   */
  public static Instant refreshAt(Instant now, Instant expiration, Duration refreshBefore) {
    Instant ahead = expiration.minus(refreshBefore);
    Instant earliest = now.plus(MIN_CACHE_TIME);
    if (ahead.isAfter(earliest)) {
      return ahead;
    }
    return earliest.isBefore(expiration) ? earliest : expiration;
  }

  /** A new exception per caller, so each gets its own stack; same message, status, code and scope. */
  private static AgentException copyOf(AgentException e) {
    return new AgentException(e.getMessage(), e.status(), e.code(), e.scope(), null);
  }
}
