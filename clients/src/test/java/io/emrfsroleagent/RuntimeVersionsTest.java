package io.emrfsroleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Each Surefire run (clients/pom.xml) runs the tests on the Hadoop and AWS SDK for Java v2 it names
 * ({@code expected.hadoop.version}, {@code expected.sdk-v2.version}): the run's class path is what it claims.
 */
@Tag("sdk-v2")
final class RuntimeVersionsTest {

  @Test
  @DisplayName("the run's Hadoop and SDK v2 are the versions it names")
  void versions() throws Exception {
    String hadoop = System.getProperty("expected.hadoop.version");
    String sdk = System.getProperty("expected.sdk-v2.version");
    assumeTrue(hadoop != null && sdk != null, "run outside Surefire: nothing named");
    assertEquals(hadoop, org.apache.hadoop.util.VersionInfo.getVersion(), "Hadoop");
    // Read at run time: the constant itself would be the compile version, inlined by javac.
    Object running = software.amazon.awssdk.core.util.VersionInfo.class.getField("SDK_VERSION").get(null);
    assertEquals(sdk, running, "AWS SDK for Java v2");
  }
}
