package io.emrfsroleagent.testing;

/**
 * What every self-test prints and how it ends: one {@code PASS name} or {@code FAIL name: cause} line per case,
 * then "N passed, N failed", exiting non-zero on any failure. A case fails by throwing (the {@code expect}
 * methods throw an {@link AssertionError} saying what was wrong). One self-test per JVM: the counts are static.
 */
public final class SelfTest {
  /** One named case. */
  public interface Case {
    void run() throws Exception;
  }

  private static int passed;
  private static int failed;

  private SelfTest() {}

  /** Runs one case and prints its line. */
  public static void check(String name, Case c) {
    try {
      c.run();
      passed++;
      System.out.println("PASS " + name);
    } catch (Throwable t) {
      failed++;
      System.out.println("FAIL " + name + ": " + t);
      t.printStackTrace(System.out);
    }
  }

  public static void expect(boolean condition, String what) {
    if (!condition) {
      throw new AssertionError(what);
    }
  }

  public static void expectEquals(Object expected, Object actual, String what) {
    if (expected == null ? actual != null : !expected.equals(actual)) {
      throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
    }
  }

  /** Prints the closing counts and exits: 0 when every case passed, 1 otherwise. */
  public static void finish() {
    System.out.println(passed + " passed, " + failed + " failed");
    System.exit(failed == 0 ? 0 : 1);
  }
}
