package io.emrfsroleagent.testing;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import org.apache.hadoop.conf.Configuration;

/**
 * What Hadoop S3A on the class path (hadoop-aws 3.3.x with SDK v1, 3.4.x with SDK v2) makes of an SDK
 * exception: its own {@code S3AUtils.translateException} and {@code S3ARetryPolicy}, called reflectively (the
 * test sources compile without hadoop-aws).
 */
public final class S3aErrors {
  private S3aErrors() {}

  /** {@code S3AUtils.translateException(operation, path, exception)}. */
  public static IOException translate(String operation, String path, Exception sdkException) throws Exception {
    Class<?> utils = Class.forName("org.apache.hadoop.fs.s3a.S3AUtils");
    for (Method m : utils.getMethods()) {
      Class<?>[] p = m.getParameterTypes();
      if (m.getName().equals("translateException") && p.length == 3 && p[0] == String.class
          && p[1] == String.class && p[2].isInstance(sdkException)) {
        return (IOException) m.invoke(null, operation, path, sdkException);
      }
    }
    throw new AssertionError("no S3AUtils.translateException for " + sdkException.getClass());
  }

  /** S3A's default retry policy's decision for a first failure of an idempotent call: RETRY, FAIL, .... */
  public static String retryDecision(IOException e) throws Exception {
    Class<?> policyClass = Class.forName("org.apache.hadoop.fs.s3a.S3ARetryPolicy");
    Object policy = policyClass.getConstructor(Configuration.class).newInstance(new Configuration(false));
    Method shouldRetry = policyClass.getMethod("shouldRetry", Exception.class, int.class, int.class, boolean.class);
    Object action = shouldRetry.invoke(policy, e, 0, 0, true);
    Field decision = action.getClass().getField("action");
    return String.valueOf(decision.get(action));
  }
}
