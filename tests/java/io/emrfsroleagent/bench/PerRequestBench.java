package io.emrfsroleagent.bench;

import com.sun.net.httpserver.HttpServer;
import io.emrfsroleagent.testing.FakeAgent;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.conf.Configuration;

/**
 * What the per-request classes cost on a cache hit, side by side with the same work without them, in one JVM:
 * the SDK v1 handler ({@code beforeExecution}) or the SDK v2 interceptor ({@code modifyRequest} +
 * {@code modifyHttpRequest}), on requests for distinct keys under one scope.
 *
 * <pre>PerRequestBench v1|v2 [N=10000] [ROUNDS=20]</pre>
 *
 * Two parts, each ROUNDS rounds of N requests a side, the two sides taking turns within each round (so that
 * other load on the machine falls on both alike); the first quarter of the rounds warms up the JIT and is not
 * counted:
 * <ul>
 *   <li>{@code hook}: the hook called directly on GetObject requests, against a loop that does what the SDK does
 *       for every request anyway (v1: the request object; v2: the interceptor contexts and execution attributes);
 *   <li>{@code client}: a real S3 client (v1 {@code AmazonS3}, v2 {@code S3Client} with the Apache HTTP client)
 *       sending HeadObject to an S3 stub on loopback, with the hook registered as S3A registers it and without;
 *       both sign with session credentials (the client's own stand for the bucket-level answer).
 * </ul>
 * CPU time is the calling thread's (the sync clients sign, send and parse on it; the stub and the agent run on
 * other threads). A fake agent answers every location under {@code s3://bench-bucket/teamA/} with that Scope and
 * counts its requests. Not a test: one line per part,
 * {@code RESULT sdk=.. part=.. n=.. rounds=.. agent_requests_first_n=.. agent_requests=.. s3_requests=..
 * with_ns=.. without_ns=.. added_ns=.. added_ns_q1=.. added_ns_q3=..}: CPU per request, medians over the counted
 * rounds; {@code added_ns} is the median of each round's difference (with minus without), q1 and q3 its
 * quartiles, which show how far other load moved it; {@code s3_requests}: what the stub received.
 */
public final class PerRequestBench {
  static final String BUCKET = "bench-bucket";

  /** Makes the N requests of one round; {@code with} says whether the hook takes part. */
  interface Side {
    void round(boolean with);
  }

  public static void main(String[] args) throws Exception {
    String sdk = args[0];
    int n = args.length > 1 ? Integer.parseInt(args[1]) : 10_000;
    int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 20;
    String[] keys = new String[n];
    for (int i = 0; i < n; i++) {
      keys[i] = "teamA/part-" + i;
    }
    for (String part : new String[] {"hook", "client"}) {
      try (FakeAgent agent = scopedAgent(); S3Stub s3 = new S3Stub()) {
        Configuration conf = new Configuration(false);
        conf.set("emrfs-role-agent.endpoint", agent.endpoint());
        conf.set("emrfs-role-agent.token-file", "");
        Side side;
        if (sdk.equals("v1")) {
          side = part.equals("hook") ? Sdk1.hook(conf, keys) : Sdk1.client(conf, keys, s3.endpoint());
        } else if (sdk.equals("v2")) {
          side = part.equals("hook") ? Sdk2.hook(conf, keys) : Sdk2.client(conf, keys, s3.endpoint());
        } else {
          throw new IllegalArgumentException("usage: PerRequestBench v1|v2 [N] [ROUNDS]");
        }
        measure(sdk, part, n, rounds, side, agent, s3);
      }
    }
  }

  static void measure(String sdk, String part, int n, int rounds, Side side, FakeAgent agent, S3Stub s3) {
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    int warmup = rounds / 4;
    long[] with = new long[rounds - warmup];
    long[] without = new long[rounds - warmup];
    int agentFirstN = -1;
    for (int round = 0; round < rounds; round++) {
      // Which side goes first alternates too: neither always inherits the other's garbage.
      for (boolean hooked : round % 2 == 0 ? new boolean[] {true, false} : new boolean[] {false, true}) {
        long cpu0 = threads.getCurrentThreadCpuTime();
        side.round(hooked);
        long perRequest = (threads.getCurrentThreadCpuTime() - cpu0) / n;
        if (round == 0 && hooked) {
          agentFirstN = agent.requests.get();
        }
        if (round >= warmup) {
          (hooked ? with : without)[round - warmup] = perRequest;
        }
      }
    }
    long[] added = new long[with.length];
    for (int i = 0; i < added.length; i++) {
      added[i] = with[i] - without[i];
    }
    System.out.println("RESULT sdk=" + sdk + " part=" + part + " n=" + n + " rounds=" + rounds
        + " agent_requests_first_n=" + agentFirstN + " agent_requests=" + agent.requests.get()
        + " s3_requests=" + s3.requests.get() + " with_ns=" + quantile(with, 2) + " without_ns="
        + quantile(without, 2) + " added_ns=" + quantile(added, 2) + " added_ns_q1=" + quantile(added, 1)
        + " added_ns_q3=" + quantile(added, 3));
  }

  /** The q-th quartile (2: the median) of the values. */
  static long quantile(long[] values, int q) {
    long[] sorted = values.clone();
    Arrays.sort(sorted);
    return sorted[Math.min(sorted.length - 1, sorted.length * q / 4)];
  }

  /** An agent that answers every location with one-hour credentials and Scope s3://bench-bucket/teamA/. */
  static FakeAgent scopedAgent() throws IOException {
    FakeAgent agent = new FakeAgent();
    agent.reply(200, "{\"AccessKeyId\":\"ASIABENCH\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\","
        + "\"Expiration\":\"" + Instant.now().plusSeconds(3600) + "\","
        + "\"RoleArn\":\"arn:aws:iam::222222222222:role/a\",\"Scope\":\"s3://" + BUCKET + "/teamA/\"}");
    return agent;
  }

  /** S3 on loopback as far as HeadObject goes: 200 with an object's headers for every request. */
  static final class S3Stub implements AutoCloseable {
    final HttpServer server;
    final AtomicInteger requests = new AtomicInteger();

    S3Stub() throws IOException {
      server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
      server.setExecutor(Executors.newFixedThreadPool(2));
      server.createContext("/", exchange -> {
        requests.incrementAndGet();
        try (InputStream in = exchange.getRequestBody()) {
          while (in.read() >= 0) {
            // drain
          }
        }
        exchange.getResponseHeaders().set("ETag", "\"d41d8cd98f00b204e9800998ecf8427e\"");
        exchange.getResponseHeaders().set("Last-Modified", "Mon, 30 Nov 2026 12:00:00 GMT");
        exchange.getResponseHeaders().set("Content-Type", "binary/octet-stream");
        exchange.getResponseHeaders().set("x-amz-request-id", "BENCH");
        exchange.sendResponseHeaders(200, -1);
        exchange.close();
      });
      server.start();
    }

    String endpoint() {
      return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @Override
    public void close() {
      server.stop(0);
      ((ExecutorService) server.getExecutor()).shutdownNow();
    }
  }

  /** SDK v1: RoleAgentRequestHandler. */
  static final class Sdk1 {
    static io.emrfsroleagent.emrfs.RoleAgentRequestHandler handler(Configuration conf) {
      io.emrfsroleagent.emrfs.RoleAgentRequestHandler h = new io.emrfsroleagent.emrfs.RoleAgentRequestHandler();
      h.setConf(conf);
      return h;
    }

    static Side hook(Configuration conf, String[] keys) {
      io.emrfsroleagent.emrfs.RoleAgentRequestHandler handler = handler(conf);
      return with -> {
        for (String key : keys) {
          com.amazonaws.services.s3.model.GetObjectRequest r =
              new com.amazonaws.services.s3.model.GetObjectRequest(BUCKET, key);
          if (with) {
            handler.beforeExecution(r);
          }
        }
      };
    }

    static Side client(Configuration conf, String[] keys, String endpoint) {
      com.amazonaws.services.s3.AmazonS3 hooked = s3(endpoint, handler(conf));
      com.amazonaws.services.s3.AmazonS3 plain = s3(endpoint, null);
      return with -> {
        com.amazonaws.services.s3.AmazonS3 s3 = with ? hooked : plain;
        for (String key : keys) {
          s3.getObjectMetadata(BUCKET, key);
        }
      };
    }

    static com.amazonaws.services.s3.AmazonS3 s3(String endpoint, com.amazonaws.handlers.RequestHandler2 handler) {
      com.amazonaws.services.s3.AmazonS3ClientBuilder b = com.amazonaws.services.s3.AmazonS3ClientBuilder.standard()
          .withEndpointConfiguration(new com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration(
              endpoint, "us-east-1"))
          .withPathStyleAccessEnabled(true)
          .withCredentials(new com.amazonaws.auth.AWSStaticCredentialsProvider(
              new com.amazonaws.auth.BasicSessionCredentials("ASIABUCKETLEVEL", "secret", "token")));
      if (handler != null) {
        b = b.withRequestHandlers(handler);
      }
      return b.build();
    }
  }

  /** SDK v2: RoleAgentExecutionInterceptor. */
  static final class Sdk2 {
    static io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor interceptor(Configuration conf) {
      io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor i =
          new io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor();
      i.setConf(conf);
      return i;
    }

    static Side hook(Configuration conf, String[] keys) {
      io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor interceptor = interceptor(conf);
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
      return with -> {
        for (String key : keys) {
          software.amazon.awssdk.services.s3.model.GetObjectRequest r = software.amazon.awssdk.services.s3.model
              .GetObjectRequest.builder().bucket(BUCKET).key(key).build();
          software.amazon.awssdk.core.interceptor.ExecutionAttributes attrs =
              new software.amazon.awssdk.core.interceptor.ExecutionAttributes();
          attrs.putAttribute(
              software.amazon.awssdk.core.interceptor.SdkInternalExecutionAttribute.SELECTED_AUTH_SCHEME, chosen);
          software.amazon.awssdk.core.interceptor.InterceptorContext before =
              software.amazon.awssdk.core.interceptor.InterceptorContext.builder().request(r).build();
          software.amazon.awssdk.core.SdkRequest modified = with ? interceptor.modifyRequest(before, attrs) : r;
          software.amazon.awssdk.core.interceptor.InterceptorContext httpContext =
              software.amazon.awssdk.core.interceptor.InterceptorContext.builder().request(modified)
                  .httpRequest(http).build();
          if (with) {
            interceptor.modifyHttpRequest(httpContext, attrs);
          }
        }
      };
    }

    static Side client(Configuration conf, String[] keys, String endpoint) {
      software.amazon.awssdk.services.s3.S3Client hooked = s3(endpoint, interceptor(conf));
      software.amazon.awssdk.services.s3.S3Client plain = s3(endpoint, null);
      return with -> {
        software.amazon.awssdk.services.s3.S3Client s3 = with ? hooked : plain;
        for (String key : keys) {
          s3.headObject(b -> b.bucket(BUCKET).key(key));
        }
      };
    }

    static software.amazon.awssdk.services.s3.S3Client s3(String endpoint,
        software.amazon.awssdk.core.interceptor.ExecutionInterceptor interceptor) {
      return software.amazon.awssdk.services.s3.S3Client.builder()
          .endpointOverride(java.net.URI.create(endpoint))
          .region(software.amazon.awssdk.regions.Region.US_EAST_1)
          .forcePathStyle(true)
          .httpClientBuilder(software.amazon.awssdk.http.apache.ApacheHttpClient.builder())
          .credentialsProvider(software.amazon.awssdk.auth.credentials.StaticCredentialsProvider.create(
              software.amazon.awssdk.auth.credentials.AwsSessionCredentials.create("ASIABUCKETLEVEL", "secret",
                  "token")))
          .overrideConfiguration(c -> {
            if (interceptor != null) {
              c.addExecutionInterceptor(interceptor);
            }
          })
          .build();
    }
  }
}
