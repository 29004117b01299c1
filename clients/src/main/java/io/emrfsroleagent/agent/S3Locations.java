package io.emrfsroleagent.agent;

import java.util.List;
import java.util.Locale;

/**
 * S3 locations as the agent compares them: {@code s3://bucket/key}, with {@code s3a://} and {@code s3n://}
 * mapped to {@code s3://} (SPEC §4: schemes are equivalent). Pure functions.
 */
public final class S3Locations {

  private S3Locations() {}

  /** {@code s3://bucket/key}; the key may be empty (the bucket root, {@code s3://bucket/}). */
  public static String of(String bucket, String key) {
    StringBuilder b = new StringBuilder(6 + bucket.length() + (key == null ? 0 : key.length()));
    b.append("s3://").append(bucket).append('/');
    if (key != null) {
      b.append(key);
    }
    return b.toString();
  }

  /** The bucket root {@code s3://bucket/}. */
  public static String bucketRoot(String bucket) {
    return of(bucket, null);
  }

  /**
   * A location or scope in the normalised form: scheme {@code s3}, lower-case scheme; null when {@code uri}
   * is not an S3 URI with a bucket.
   */
  public static String normalise(String uri) {
    if (uri == null) {
      return null;
    }
    int sep = uri.indexOf("://");
    if (sep <= 0) {
      return null;
    }
    String scheme = uri.substring(0, sep).toLowerCase(Locale.ROOT);
    if (!scheme.equals("s3") && !scheme.equals("s3a") && !scheme.equals("s3n")) {
      return null;
    }
    String rest = uri.substring(sep + 3);
    int slash = rest.indexOf('/');
    String bucket = slash < 0 ? rest : rest.substring(0, slash);
    if (bucket.isEmpty()) {
      return null;
    }
    return "s3://" + (slash < 0 ? bucket + "/" : rest);
  }

  /** The bucket of a normalised location. */
  public static String bucketOf(String location) {
    int end = location.indexOf('/', 5);
    return end < 0 ? location.substring(5) : location.substring(5, end);
  }

  /**
   * The longest common prefix of {@code keys}: where a DeleteObjects request of these keys is located.
   * Empty when the list is empty or the keys share nothing.
   */
  public static String commonPrefix(List<String> keys) {
    if (keys.isEmpty()) {
      return "";
    }
    String prefix = keys.get(0);
    for (int i = 1; i < keys.size() && !prefix.isEmpty(); i++) {
      String k = keys.get(i);
      int n = Math.min(prefix.length(), k.length());
      int j = 0;
      while (j < n && prefix.charAt(j) == k.charAt(j)) {
        j++;
      }
      prefix = prefix.substring(0, j);
    }
    return prefix;
  }
}
