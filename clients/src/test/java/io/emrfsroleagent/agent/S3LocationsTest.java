package io.emrfsroleagent.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Collections;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** S3 locations as the agent compares them ({@link S3Locations}). */
final class S3LocationsTest {
  @Test
  @DisplayName("locations: s3a/s3n become s3; bucket roots; common prefixes")
  void locations() {
    assertEquals("s3://b/k/x", S3Locations.normalise("S3A://b/k/x"), "s3a");
    assertEquals("s3://b/", S3Locations.normalise("s3n://b"), "bucket only");
    assertEquals(null, S3Locations.normalise("hdfs://b/x"), "not S3");
    assertEquals(null, S3Locations.normalise("s3:///x"), "no bucket");
    assertEquals("b", S3Locations.bucketOf("s3://b/k"), "bucket");
    assertEquals("b", S3Locations.bucketOf("s3://b"), "bucket without slash");
    assertEquals("dir/pa", S3Locations.commonPrefix(Arrays.asList("dir/part-1", "dir/pa", "dir/part-2")), "prefix");
    assertEquals("", S3Locations.commonPrefix(Collections.<String>emptyList()), "none");
  }
}
