package io.emrfsroleagent.agent;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Where one S3 request reaches and with which access, as the SDK-specific code reads it from the request: one
 * object or prefix (the bucket root for requests without a key: HeadBucket, listing the root, bucket
 * operations); a copy's source (read) and destination (write); a bulk delete's keys (write). Keys are taken
 * literally ({@code s3://bucket/<key as S3 has it>}). {@link #resolve} picks the credentials every part agrees
 * on, or fails with a message saying which parts disagree.
 */
public final class RequestLocation {
  private final String operation;
  private final Access access;
  private final String location;
  private final String source;
  private final List<String> members;

  private RequestLocation(String operation, Access access, String location, String source, List<String> members) {
    this.operation = operation;
    this.access = access;
    this.location = location;
    this.source = source;
    this.members = members;
  }

  /**
   * One object or prefix, with the operation's access ({@link Access#ofOperation}); an empty or null key is the
   * bucket root {@code s3://bucket/}. Null only without a bucket (a request that names none, e.g. ListBuckets).
   */
  public static RequestLocation of(String operation, String bucket, String keyOrPrefix) {
    return of(operation, Access.ofOperation(operation), bucket, keyOrPrefix);
  }

  /** One object or prefix with the given access; null without a bucket. */
  public static RequestLocation of(String operation, Access access, String bucket, String keyOrPrefix) {
    if (bucket == null || bucket.isEmpty()) {
      return null;
    }
    return new RequestLocation(operation, access, S3Locations.of(bucket, keyOrPrefix), null,
        Collections.<String>emptyList());
  }

  /**
   * A server-side copy: the destination asked for with write access, the source with read access, and both must
   * be served by one session. A source without a key is its bucket's root; null only without a destination
   * bucket.
   */
  public static RequestLocation copy(String operation, String sourceBucket, String sourceKey, String bucket,
      String key) {
    if (bucket == null || bucket.isEmpty()) {
      return null;
    }
    String src = sourceBucket == null || sourceBucket.isEmpty() ? null : S3Locations.of(sourceBucket, sourceKey);
    return new RequestLocation(operation, Access.WRITE, S3Locations.of(bucket, key), src,
        Collections.<String>emptyList());
  }

  /**
   * A bulk delete (write): located at the keys' common prefix; every key must be served by the same session.
   * Null without a bucket.
   */
  public static RequestLocation bulk(String operation, String bucket, List<String> keys) {
    if (bucket == null || bucket.isEmpty()) {
      return null;
    }
    List<String> locations = new ArrayList<>(keys.size());
    for (String k : keys) {
      locations.add(S3Locations.of(bucket, k));
    }
    String prefix = S3Locations.commonPrefix(keys);
    String at = S3Locations.of(bucket, prefix);
    return new RequestLocation(operation, Access.WRITE, at, null, locations);
  }

  /** The location sent to the agent for this request (the destination of a copy). */
  public String location() {
    return location;
  }

  /** The access asked for {@link #location()} (a copy's source is always asked for with read). */
  public Access access() {
    return access;
  }

  /** A copy's source location, or null. */
  public String source() {
    return source;
  }

  /**
   * The credentials for the whole request. A copy whose source and destination, or a bulk delete whose keys,
   * are served by different sessions fails: S3 signs a request with one set of credentials.
   */
  public <T> ScopeCache.Entry<T> resolve(ScopeCache<T> cache) {
    ScopeCache.Entry<T> entry = cache.get(location, access);
    if (source != null) {
      ScopeCache.Entry<T> from = cache.get(source, Access.READ);
      if (!from.credentials().sameSessionAs(entry.credentials())) {
        throw new AgentException(operation + " from " + source + " to " + location
            + " needs one set of credentials for both, but emrfs-role-agent maps them to different sessions ("
            + from.credentials().describe() + " for the source, " + entry.credentials().describe()
            + " for the destination); S3 signs a request with one set, so this copy cannot run. Copy by reading"
            + " and writing instead (e.g. distcp), or map both prefixes to the same role.",
            0, AgentException.CROSS_SCOPE_COPY, null, null);
      }
    }
    for (String member : members) {
      if (entry.covers(member)) {
        continue; // under the scope that served the common prefix: decided the same way
      }
      ScopeCache.Entry<T> other = cache.get(member, access);
      if (!other.credentials().sameSessionAs(entry.credentials())) {
        throw new AgentException(operation + " of " + members.size() + " objects under " + location
            + " needs one set of credentials for all, but emrfs-role-agent maps " + member + " to "
            + other.credentials().describe() + " and " + location + " to " + entry.credentials().describe()
            + "; delete them separately per prefix.", 0, AgentException.CROSS_SCOPE_REQUEST, null, null);
      }
    }
    return entry;
  }

  @Override
  public String toString() {
    return operation + " " + (source == null ? "" : source + " (read) -> ") + location + " (" + access.wire() + ")";
  }
}
