package io.emrfsroleagent.agent;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Where one S3 request reaches, as the SDK-specific code reads it from the request: one object or prefix; a
 * copy's source and destination; a bulk delete's keys. {@link #resolve} picks the credentials every part
 * agrees on, or fails with a message saying which parts disagree.
 */
public final class RequestLocation {
  private final String operation;
  private final String location;
  private final String source;
  private final List<String> members;

  private RequestLocation(String operation, String location, String source, List<String> members) {
    this.operation = operation;
    this.location = location;
    this.source = source;
    this.members = members;
  }

  /**
   * One object or prefix; null (meaning: the bucket-level credentials) when the key or prefix is empty,
   * as for HeadBucket or listing a bucket's root.
   */
  public static RequestLocation of(String operation, String bucket, String keyOrPrefix) {
    if (bucket == null || bucket.isEmpty() || keyOrPrefix == null || keyOrPrefix.isEmpty()) {
      return null;
    }
    return new RequestLocation(operation, S3Locations.of(bucket, keyOrPrefix), null, Collections.<String>emptyList());
  }

  /** A server-side copy: source and destination must be served by one session. */
  public static RequestLocation copy(String operation, String sourceBucket, String sourceKey, String bucket,
      String key) {
    if (bucket == null || key == null || key.isEmpty()) {
      return null;
    }
    String src = sourceBucket == null || sourceKey == null ? null : S3Locations.of(sourceBucket, sourceKey);
    return new RequestLocation(operation, S3Locations.of(bucket, key), src, Collections.<String>emptyList());
  }

  /** A bulk delete: located at the keys' common prefix; every key must be served by the same session. */
  public static RequestLocation bulk(String operation, String bucket, List<String> keys) {
    if (bucket == null || keys.isEmpty()) {
      return null;
    }
    List<String> locations = new ArrayList<>(keys.size());
    for (String k : keys) {
      locations.add(S3Locations.of(bucket, k));
    }
    String prefix = S3Locations.commonPrefix(keys);
    String at = S3Locations.of(bucket, prefix);
    return new RequestLocation(operation, at, null, locations);
  }

  /** The location sent to the agent for this request (the destination of a copy). */
  public String location() {
    return location;
  }

  /**
   * The credentials for the whole request. A copy whose source and destination, or a bulk delete whose keys,
   * are served by different sessions fails: S3 signs a request with one set of credentials.
   */
  public <T> ScopeCache.Entry<T> resolve(ScopeCache<T> cache) {
    ScopeCache.Entry<T> entry = cache.get(location);
    if (source != null) {
      ScopeCache.Entry<T> from = cache.get(source);
      if (!from.credentials().sameSessionAs(entry.credentials())) {
        throw new AgentException(operation + " from " + source + " to " + location
            + " needs one set of credentials for both, but emrfs-role-agent maps them to different sessions ("
            + from.credentials().describe() + " for the source, " + entry.credentials().describe()
            + " for the destination); S3 signs a request with one set, so this copy cannot run. Copy by reading"
            + " and writing instead (e.g. distcp), or map both prefixes to the same role.",
            0, "CrossScopeCopy", null, null);
      }
    }
    for (String member : members) {
      if (entry.covers(member)) {
        continue; // under the scope that served the common prefix: decided the same way
      }
      ScopeCache.Entry<T> other = cache.get(member);
      if (!other.credentials().sameSessionAs(entry.credentials())) {
        throw new AgentException(operation + " of " + members.size() + " objects under " + location
            + " needs one set of credentials for all, but emrfs-role-agent maps " + member + " to "
            + other.credentials().describe() + " and " + location + " to " + entry.credentials().describe()
            + "; delete them separately per prefix.", 0, "CrossScopeRequest", null, null);
      }
    }
    return entry;
  }

  @Override
  public String toString() {
    return operation + " " + (source == null ? "" : source + " -> ") + location;
  }
}
