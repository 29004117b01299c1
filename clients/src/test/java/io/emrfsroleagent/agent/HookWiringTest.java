package io.emrfsroleagent.agent;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** Whether a filesystem runs the per-request hook, read from its Hadoop configuration ({@link HookWiring}). */
final class HookWiringTest {
  @Test
  @DisplayName("per-request hook wiring read from the Hadoop configuration")
  void hookWiring() throws Exception {
    String handler = "io.emrfsroleagent.emrfs.RoleAgentRequestHandler";
    java.net.URI s3a = new java.net.URI("s3a://lake/");
    java.net.URI s3 = new java.net.URI("s3://lake/");
    Configuration conf = new Configuration(false);
    assertTrue(!HookWiring.perRequestHook(conf, s3a, HookWiring.V1_HANDLERS_KEY, handler), "nothing configured");
    conf.set(HookWiring.V1_HANDLERS_KEY, "some.Other, " + handler);
    assertTrue(HookWiring.perRequestHook(conf, s3a, HookWiring.V1_HANDLERS_KEY, handler), "listed, audit default on");
    assertTrue(!HookWiring.perRequestHook(conf, s3a, HookWiring.V2_INTERCEPTORS_KEY, handler), "the other key");
    assertTrue(!HookWiring.perRequestHook(conf, s3, HookWiring.V1_HANDLERS_KEY, handler), "s3 without an impl");
    conf.set("fs.s3.impl", "com.amazon.ws.emr.hadoop.fs.EmrFileSystem");
    assertTrue(!HookWiring.perRequestHook(conf, s3, HookWiring.V1_HANDLERS_KEY, handler), "EMRFS");
    conf.set("fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem");
    assertTrue(HookWiring.perRequestHook(conf, s3, HookWiring.V1_HANDLERS_KEY, handler), "s3 through S3A (EMR 7.10)");
    conf.setBoolean(HookWiring.AUDIT_ENABLED_KEY, false);
    assertTrue(!HookWiring.perRequestHook(conf, s3a, HookWiring.V1_HANDLERS_KEY, handler), "auditing off");
    assertTrue(!HookWiring.perRequestHook(conf, null, HookWiring.V1_HANDLERS_KEY, handler), "no URI");
    assertTrue(!HookWiring.placeholderSecret().isEmpty()
        && HookWiring.placeholderSecret().equals(HookWiring.placeholderSecret()), "one secret per JVM");
  }
}
