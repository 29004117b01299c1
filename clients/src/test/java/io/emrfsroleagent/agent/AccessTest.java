package io.emrfsroleagent.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** The access of an S3 operation ({@link Access}), as sent in {@code access=}. */
final class AccessTest {
  @Test
  @DisplayName("reads are Get, Head and List operations; everything else, and what is not known, writes")
  void accessPerOperation() {
    assertEquals(Access.READ, Access.ofOperation("GetObject"), "GetObject");
    assertEquals(Access.READ, Access.ofOperation("HeadObject"), "HeadObject");
    assertEquals(Access.READ, Access.ofOperation("ListObjectsV2"), "ListObjectsV2");
    assertEquals(Access.READ, Access.ofOperation("GetObjectTagging"), "GetObjectTagging");
    assertEquals(Access.WRITE, Access.ofOperation("PutObject"), "PutObject");
    assertEquals(Access.WRITE, Access.ofOperation("DeleteObjects"), "DeleteObjects");
    assertEquals(Access.WRITE, Access.ofOperation("CompleteMultipartUpload"), "CompleteMultipartUpload");
    assertEquals(Access.WRITE, Access.ofOperation(null), "unknown");
    assertEquals("read", Access.READ.wire(), "wire");
    assertEquals("write", Access.WRITE.wire(), "wire");
  }
}
