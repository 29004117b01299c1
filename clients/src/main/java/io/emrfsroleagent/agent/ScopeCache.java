package io.emrfsroleagent.agent;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's answers for one user, kept by the access and the {@code Scope} they hold for (SPEC §5), so that
 * one answer serves every S3 request under its scope with the same access.
 *
 * <ul>
 *   <li>Lookup: the longest cached scope of the request's access that the location starts with, compared as
 *       literal strings (keys are bytes: {@code s3://b/x%2Fy/} is not {@code s3://b/x/y/}). An answer without
 *       {@code Scope} holds for exactly the location asked for.</li>
 *   <li>A miss asks the agent; concurrent misses for one location and access share that one request (they wait
 *       on its future, no polling).</li>
 *   <li>Credentials are asked for again {@code refresh-before-expiry} ahead of expiry (at least a minute after
 *       they arrived, as the bucket-level provider does); one caller refreshes (asking with the scope as the
 *       location), the others keep using the current ones meanwhile. The refreshed answer replaces the old one;
 *       if its scope no longer covers the location being asked for (a reload narrowed a rule, or denies the old
 *       scope), the location itself is asked for and that answer served. If the agent cannot be reached or
 *       fails, the current credentials are served until they expire; if it refuses, they are dropped.</li>
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
    final Access access;
    final String scope;
    /** No {@code Scope} came with the answer: it holds for exactly {@link #scope} and nothing under it. */
    final boolean exact;
    final AgentCredentials credentials;
    final T value;
    final AgentException denial;
    final Instant refreshAt;
    final Instant expiresAt;

    Entry(Access access, String scope, boolean exact, AgentCredentials credentials, T value,
        AgentException denial, Instant refreshAt, Instant expiresAt) {
      this.access = access;
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

    /** The access this answer holds for (null: asked without one). */
    public Access access() {
      return access;
    }

    /** Whether this answer holds for {@code location} (null: asked without one). */
    public boolean covers(String location) {
      if (scope == null || location == null) {
        return scope == location;
      }
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
      return "Entry{scope=" + scope + (access == null ? "" : ", " + access.wire()) + ", "
          + (credentials == null ? "denied" : credentials.toString()) + "}";
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

  /** {@link #get(String, Access)} without an access: the bucket-level providers' requests (any access). */
  public Entry<T> get(String location) {
    return get(location, null);
  }

  /**
   * Credentials for {@code location} (normalised, {@code s3://bucket/<literal key>}; null asks without a location,
   * and that answer holds for no location) and {@code access} (null: any); throws {@link AgentException} when the
   * agent cannot be reached or refuses.
   */
  public Entry<T> get(String location, Access access) {
    Instant now = clock.instant();
    Entry<T> cached = lookup(location, access, now);
    if (cached == null) {
      return fetch(location, access, null, now);
    }
    if (cached.denial != null) {
      throw copyOf(cached.denial);
    }
    if (now.isBefore(cached.refreshAt)) {
      return cached;
    }
    Entry<T> fresh;
    try {
      fresh = fetch(cached.scope, access, cached, now);
    } catch (AgentException e) {
      if (e.kind() == AgentException.Kind.UNAVAILABLE || Objects.equals(cached.scope, location)
          || (e.scope() != null && location.startsWith(e.scope()))) {
        throw e; // the location itself was refused (or no answer came): asking again for it says the same
      }
      // The old scope is refused as a whole now; the location may not be (a deny deeper in it).
      return fetch(location, access, null, now);
    }
    if (fresh == cached || fresh.covers(location)) {
      return fresh;
    }
    // A reload narrowed the rule: the answer for the old scope no longer holds for this location.
    return fetch(location, access, null, now);
  }

  /** Forgets every answer and deny: the next {@link #get} asks the agent. */
  public synchronized void clear() {
    byBucket.clear();
  }

  /** How many scopes are cached (for tests and metrics). */
  public int size() {
    int n = 0;
    for (Entry<T>[] entries : byBucket.values()) {
      n += entries.length;
    }
    return n;
  }

  private Entry<T> lookup(String location, Access access, Instant now) {
    Entry<T>[] entries = byBucket.get(bucketKey(location));
    if (entries == null) {
      return null;
    }
    for (Entry<T> e : entries) {
      if (e.access == access && e.covers(location) && now.isBefore(e.expiresAt)) {
        return e; // longest first: the first match is the longest
      }
    }
    return null;
  }

  /**
   * Asks the agent for {@code location}, or waits for the request already asking; {@code current} (when
   * refreshing) is served to everyone but the one caller that asks, and if the agent cannot be reached or fails.
   * The answer replaces {@code current}; so does a refusal.
   */
  private Entry<T> fetch(String location, Access access, Entry<T> current, Instant now) {
    String where = location == null ? "" : location;
    String flightKey = access == null ? where : access.wire() + ' ' + where;
    CompletableFuture<Entry<T>> mine = new CompletableFuture<>();
    CompletableFuture<Entry<T>> running = inFlight.putIfAbsent(flightKey, mine);
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
      Entry<T> fresh = load(location, access, current, now);
      mine.complete(fresh);
      return fresh;
    } catch (AgentException e) {
      mine.completeExceptionally(e);
      if (e.isDenial()) {
        store(new Entry<T>(access, e.scope(), false, null, null, e, now.plus(denyCache), now.plus(denyCache)),
            current);
      } else if (current != null) {
        if (e.kind() == AgentException.Kind.UNAVAILABLE && now.isBefore(current.credentials.expiration())) {
          LOG.warn("Refreshing credentials for {} failed; serving cached credentials {} until they expire at {}:"
              + " {}", current.scope, current.credentials.accessKeyId(), current.credentials.expiration(),
              e.getMessage());
          return current;
        }
        remove(current); // refused: what the agent no longer hands out is not served either
      }
      throw e;
    } catch (RuntimeException | Error e) {
      mine.completeExceptionally(e);
      throw e;
    } finally {
      inFlight.remove(flightKey, mine);
    }
  }

  private Entry<T> load(String location, Access access, Entry<T> replacing, Instant now) {
    AgentClient.Answer answer = client.fetch(location, user, access, now);
    String scope = answer.scope != null ? answer.scope : location;
    AgentCredentials creds = answer.credentials;
    Entry<T> entry = new Entry<>(access, scope, answer.scope == null, creds, convert.apply(creds), null,
        refreshAt(now, creds.expiration(), refreshBefore), creds.expiration());
    LOG.debug("Credentials {} for {} ({}, user {}), scope {}, expiring at {}", creds.describe(), location,
        access == null ? "any access" : access.wire(), user, scope, creds.expiration());
    store(entry, replacing);
    return entry;
  }

  private synchronized void remove(Entry<T> entry) {
    String bucket = bucketKey(entry.scope);
    Entry<T>[] old = byBucket.get(bucket);
    if (old == null) {
      return;
    }
    List<Entry<T>> kept = new ArrayList<>(old.length);
    for (Entry<T> e : old) {
      if (e != entry) {
        kept.add(e);
      }
    }
    if (kept.size() != old.length) {
      put(bucket, kept);
    }
  }

  /** Adds {@code entry}, dropping expired entries, any for the same access and scope, and {@code replacing}. */
  private synchronized void store(Entry<T> entry, Entry<T> replacing) {
    String bucket = bucketKey(entry.scope);
    Entry<T>[] old = byBucket.get(bucket);
    Instant now = clock.instant();
    List<Entry<T>> kept = new ArrayList<>();
    if (old != null) {
      for (Entry<T> e : old) {
        boolean same = e.access == entry.access && Objects.equals(e.scope, entry.scope) && e.exact == entry.exact;
        if (!same && e != replacing && now.isBefore(e.expiresAt)) {
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
    put(bucket, kept);
  }

  @SuppressWarnings("unchecked")
  private void put(String bucket, List<Entry<T>> entries) {
    Entry<T>[] fresh = entries.toArray((Entry<T>[]) new Entry<?>[0]);
    Arrays.sort(fresh, Comparator.comparingInt((Entry<T> e) -> e.scope == null ? 0 : e.scope.length()).reversed());
    byBucket.put(bucket, fresh);
  }

  /** Where the entries of {@code location} are kept: its bucket; "" for the answer asked without a location. */
  private static String bucketKey(String location) {
    return location == null ? "" : S3Locations.bucketOf(location);
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
