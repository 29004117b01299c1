package io.emrfsroleagent.agent;

import java.net.URI;
import java.security.SecureRandom;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;

/**
 * Whether an S3A filesystem runs our per-request hook, read from its Hadoop configuration, and the placeholder
 * credentials the bucket-level providers hand out when it does.
 *
 * <p>With the hook in place every S3 request is decided by the hook for its own location (keyless ones for the
 * bucket root), so the filesystem's credentials provider is never what signs a request. SDK 2.24.x still
 * resolves the provider's identity before the hook runs; if the provider asked the agent for the bucket root, a
 * job with rules only for prefixes (and {@code fallback = "deny"}) would fail every request, and any other job
 * would fetch a bucket-wide credential it never needs. So the providers return {@link #PLACEHOLDER_ACCESS_KEY_ID}
 * instead: the hook replaces it on every request, and if anything ever signed with it, S3 would refuse the
 * request ({@code InvalidAccessKeyId}: no such key exists, and its secret is random per JVM).
 */
public final class HookWiring {
  /** S3A's switch for its audit hooks (default true in Hadoop 3.3.2 and later; off, no hook is loaded). */
  public static final String AUDIT_ENABLED_KEY = "fs.s3a.audit.enabled";
  /** SDK v1 request handlers S3A adds to its client (Hadoop 3.3.2 - 3.3.x). */
  public static final String V1_HANDLERS_KEY = "fs.s3a.audit.request.handlers";
  /** SDK v2 execution interceptors S3A adds to its clients (Hadoop 3.4 and later). */
  public static final String V2_INTERCEPTORS_KEY = "fs.s3a.audit.execution.interceptors";

  private static final String S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem";

  /**
   * The placeholder's access key id. Not a key AWS can issue (those are upper-case letters and digits), so S3
   * answers {@code InvalidAccessKeyId} to anything signed with it.
   */
  public static final String PLACEHOLDER_ACCESS_KEY_ID = "EMRFS_ROLE_AGENT_PER_REQUEST_PLACEHOLDER";

  private static final String PLACEHOLDER_SECRET = randomSecret();

  private HookWiring() {}

  /**
   * Whether the filesystem at {@code fsUri} is S3A ({@code fs.<scheme>.impl}, or the {@code s3a} scheme without
   * one), has auditing on ({@value #AUDIT_ENABLED_KEY}, default true) and lists {@code hookClass} under
   * {@code hooksKey} ({@link #V1_HANDLERS_KEY} or {@link #V2_INTERCEPTORS_KEY}). S3A hands its providers the
   * filesystem's configuration with per-bucket options already applied, so a per-bucket setting counts.
   * EMRFS ({@code s3://} on EMR before 7.10) is not S3A: false there whatever core-site says about S3A.
   */
  public static boolean perRequestHook(Configuration conf, URI fsUri, String hooksKey, String hookClass) {
    if (conf == null || fsUri == null || fsUri.getScheme() == null) {
      return false;
    }
    String scheme = fsUri.getScheme().toLowerCase(Locale.ROOT);
    String impl = conf.getTrimmed("fs." + scheme + ".impl", "");
    boolean s3a = impl.isEmpty() ? scheme.equals("s3a") : impl.equals(S3A_FILESYSTEM);
    if (!s3a || !conf.getBoolean(AUDIT_ENABLED_KEY, true)) {
      return false;
    }
    for (String name : conf.getTrimmedStrings(hooksKey)) {
      if (name.equals(hookClass)) {
        return true;
      }
    }
    return false;
  }

  /** The placeholder's secret key: random per JVM, never a real secret. */
  public static String placeholderSecret() {
    return PLACEHOLDER_SECRET;
  }

  private static String randomSecret() {
    byte[] bytes = new byte[30];
    new SecureRandom().nextBytes(bytes);
    StringBuilder b = new StringBuilder(40);
    for (byte x : bytes) {
      b.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
    }
    return b.substring(0, 40);
  }
}
