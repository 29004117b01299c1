package io.emrfsroleagent.bench;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.conf.Configuration;

/**
 * What the per-request classes cost on a cache hit: CPU time per S3 request for the SDK v1 handler
 * ({@code beforeExecution}) or the SDK v2 interceptor ({@code modifyRequest} + {@code modifyHttpRequest}),
 * over N requests for distinct keys under one scope, and how many agent requests those N cost.
 *
 * <pre>PerRequestBench v1|v2|v1-baseline|v2-baseline [N]</pre>
 *
 * The baselines do the same minus the clients' hooks: creating each request (v1) and the SDK's interceptor
 * context and execution attributes (v2), which the SDK does for every request anyway.
 *
 * A fake agent on loopback answers every location under {@code s3://bench-bucket/teamA/} with that Scope. Not a
 * test: it prints {@code RESULT sdk=.. requests=N agent_requests=.. cpu_ns_per_request=..}.
 */
public final class PerRequestBench {
  public static void main(String[] args) throws Exception {
    String sdk = args[0];
    int n = args.length > 1 ? Integer.parseInt(args[1]) : 200_000;
    AtomicInteger agentRequests = new AtomicInteger();
    String expiration = Instant.now().plusSeconds(3600).toString();
    HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.createContext("/", exchange -> {
      agentRequests.incrementAndGet();
      byte[] body = ("{\"AccessKeyId\":\"ASIABENCH\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\","
          + "\"Expiration\":\"" + expiration + "\",\"RoleArn\":\"arn:aws:iam::222222222222:role/a\","
          + "\"Scope\":\"s3://bench-bucket/teamA/\"}").getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    });
    server.start();
    Configuration conf = new Configuration(false);
    conf.set("emrfs-role-agent.endpoint", "http://127.0.0.1:" + server.getAddress().getPort());
    conf.set("emrfs-role-agent.token-file", "");
    boolean baseline = sdk.endsWith("-baseline");
    Runnable[] requests = sdk.startsWith("v1") ? Sdk1.requests(conf, n, baseline) : Sdk2.requests(conf, n, baseline);
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    // Warm up (JIT), then measure.
    for (int round = 0; round < 6; round++) {
      long cpu0 = threads.getCurrentThreadCpuTime();
      for (Runnable r : requests) {
        r.run();
      }
      long cpu = threads.getCurrentThreadCpuTime() - cpu0;
      if (round == 5) {
        System.out.println("RESULT sdk=" + sdk + " requests=" + n + " agent_requests=" + agentRequests.get()
            + " cpu_ns_per_request=" + (cpu / n));
      }
    }
    server.stop(0);
  }

  /** SDK v1: the handler's beforeExecution on GetObject requests. */
  static final class Sdk1 {
    static Runnable[] requests(Configuration conf, int n, boolean baseline) {
      io.emrfsroleagent.emrfs.RoleAgentRequestHandler handler = handler(conf);
      Runnable[] out = new Runnable[n];
      for (int i = 0; i < n; i++) {
        com.amazonaws.services.s3.model.GetObjectRequest r =
            new com.amazonaws.services.s3.model.GetObjectRequest("bench-bucket", "teamA/part-" + i);
        out[i] = baseline ? () -> r.getKey() : () -> handler.beforeExecution(r);
      }
      return out;
    }

    static io.emrfsroleagent.emrfs.RoleAgentRequestHandler handler(Configuration conf) {
      io.emrfsroleagent.emrfs.RoleAgentRequestHandler h = new io.emrfsroleagent.emrfs.RoleAgentRequestHandler();
      h.setConf(conf);
      return h;
    }
  }

  /** SDK v2: the interceptor's modifyRequest and modifyHttpRequest on GetObject requests. */
  static final class Sdk2 {
    static final boolean NO_HTTP = Boolean.getBoolean("bench.nohttp");
    static Runnable[] requests(Configuration conf, int n, boolean baseline) {
      io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor interceptor =
          new io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor();
      interceptor.setConf(conf);
      software.amazon.awssdk.http.SdkHttpFullRequest http = software.amazon.awssdk.http.SdkHttpFullRequest.builder()
          .method(software.amazon.awssdk.http.SdkHttpMethod.GET).protocol("http").host("localhost").build();
      // What the SDK's auth-scheme interceptor has chosen by then (identity: the bucket-level credentials).
      software.amazon.awssdk.core.SelectedAuthScheme<software.amazon.awssdk.identity.spi.AwsCredentialsIdentity>
          chosen = new software.amazon.awssdk.core.SelectedAuthScheme<>(
              java.util.concurrent.CompletableFuture.completedFuture(
                  software.amazon.awssdk.identity.spi.AwsCredentialsIdentity.create("AKIABUCKET", "secret")),
              software.amazon.awssdk.http.auth.aws.signer.AwsV4HttpSigner.create(),
              software.amazon.awssdk.http.auth.spi.scheme.AuthSchemeOption.builder().schemeId("aws.auth#sigv4")
                  .build());
      Runnable[] out = new Runnable[n];
      for (int i = 0; i < n; i++) {
        software.amazon.awssdk.services.s3.model.GetObjectRequest r = software.amazon.awssdk.services.s3.model
            .GetObjectRequest.builder().bucket("bench-bucket").key("teamA/part-" + i).build();
        out[i] = baseline ? () -> {
          software.amazon.awssdk.core.interceptor.ExecutionAttributes attrs =
              new software.amazon.awssdk.core.interceptor.ExecutionAttributes();
          attrs.putAttribute(software.amazon.awssdk.core.interceptor.SdkInternalExecutionAttribute.SELECTED_AUTH_SCHEME,
              chosen);
          software.amazon.awssdk.core.interceptor.InterceptorContext.builder().request(r).build();
          software.amazon.awssdk.core.interceptor.InterceptorContext.builder().request(r).httpRequest(http).build();
          attrs.getAttribute(software.amazon.awssdk.core.interceptor.SdkExecutionAttribute.SERVICE_NAME);
        } : () -> {
          software.amazon.awssdk.core.interceptor.ExecutionAttributes attrs =
              new software.amazon.awssdk.core.interceptor.ExecutionAttributes();
          attrs.putAttribute(software.amazon.awssdk.core.interceptor.SdkInternalExecutionAttribute.SELECTED_AUTH_SCHEME,
              chosen);
          software.amazon.awssdk.core.SdkRequest modified = interceptor.modifyRequest(
              software.amazon.awssdk.core.interceptor.InterceptorContext.builder().request(r).build(), attrs);
          if (!NO_HTTP) {
            interceptor.modifyHttpRequest(software.amazon.awssdk.core.interceptor.InterceptorContext.builder()
                .request(modified).httpRequest(http).build(), attrs);
          }
        };
      }
      return out;
    }
  }
}
