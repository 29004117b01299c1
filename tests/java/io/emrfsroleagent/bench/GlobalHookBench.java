package io.emrfsroleagent.bench;

import io.emrfsroleagent.bench.PerRequestBench.S3Stub;
import io.emrfsroleagent.bench.PerRequestBench.Side;
import io.emrfsroleagent.sdk2.RoleAgentGlobalInterceptor;
import io.emrfsroleagent.testing.FakeAgent;
import java.net.URI;
import java.util.concurrent.CompletableFuture;
import software.amazon.awssdk.auth.credentials.AwsSessionCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.core.SelectedAuthScheme;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.interceptor.InterceptorContext;
import software.amazon.awssdk.core.interceptor.SdkExecutionAttribute;
import software.amazon.awssdk.core.interceptor.SdkInternalExecutionAttribute;
import software.amazon.awssdk.http.SdkHttpFullRequest;
import software.amazon.awssdk.http.SdkHttpMethod;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.http.auth.aws.signer.AwsV4HttpSigner;
import software.amazon.awssdk.http.auth.spi.scheme.AuthSchemeOption;
import software.amazon.awssdk.identity.spi.AwsCredentialsIdentity;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;

/**
 * What the JVM-wide SDK v2 hook ({@link RoleAgentGlobalInterceptor}, which emrfs-role-agent-hooks.jar puts on
 * every S3 client) costs per request on a scope hit, in the way Iceberg's {@code S3FileIO} uses S3: a sync
 * {@code S3Client} with the Apache HTTP client and the client's own static credentials, requests for distinct
 * keys under one scope. Side by side with the same client without the hook, in one JVM; measured and printed as
 * {@link PerRequestBench} does ({@code RESULT sdk=v2-global part=hook|client ...}).
 *
 * <pre>GlobalHookBench [N=10000] [ROUNDS=20]</pre>
 *
 * The hook is added to one of two otherwise identical clients through the client's override configuration
 * (the SDK would add it from the global list to both, and its cost is the same wherever it sits in the chain);
 * run without the hooks jar on the class path. Its settings come from system properties, as the JVM-wide hooks
 * read them. With Hadoop on the class path the hook also looks up the calling thread's Hadoop user per request.
 */
public final class GlobalHookBench {

  public static void main(String[] args) throws Exception {
    int n = args.length > 0 ? Integer.parseInt(args[0]) : 10_000;
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 20;
    String[] keys = new String[n];
    for (int i = 0; i < n; i++) {
      keys[i] = "teamA/warehouse/db/t/data/part-" + i + ".parquet";
    }
    // One agent for the JVM: the hook reads its settings once, at the first S3 request.
    try (FakeAgent agent = PerRequestBench.scopedAgent()) {
      System.setProperty("emrfs-role-agent.endpoint", agent.endpoint());
      System.setProperty("emrfs-role-agent.token-file", "");
      System.setProperty("emrfs-role-agent.client-properties", "/nonexistent/client.properties");
      String hadoop = hadoopPresent() ? "hadoop" : "no-hadoop";
      try (S3Stub s3 = new S3Stub()) {
        PerRequestBench.measure("v2-global-" + hadoop, "hook", n, rounds, hook(keys), agent, s3);
      }
      try (S3Stub s3 = new S3Stub()) {
        PerRequestBench.measure("v2-global-" + hadoop, "client", n, rounds, client(keys, s3.endpoint()), agent, s3);
      }
    }
  }

  static boolean hadoopPresent() {
    try {
      Class.forName("org.apache.hadoop.security.UserGroupInformation");
      return true;
    } catch (ClassNotFoundException e) {
      return false;
    }
  }

  /** The hook's two calls per request, against the contexts and attributes the SDK makes anyway. */
  static Side hook(String[] keys) {
    RoleAgentGlobalInterceptor interceptor = new RoleAgentGlobalInterceptor();
    SdkHttpFullRequest http = SdkHttpFullRequest.builder().method(SdkHttpMethod.GET).protocol("http")
        .host("localhost").build();
    SelectedAuthScheme<AwsCredentialsIdentity> chosen = new SelectedAuthScheme<>(
        CompletableFuture.completedFuture(AwsCredentialsIdentity.create("AKIAOWN", "secret")),
        AwsV4HttpSigner.create(), AuthSchemeOption.builder().schemeId("aws.auth#sigv4").build());
    return with -> {
      for (String key : keys) {
        GetObjectRequest r = GetObjectRequest.builder().bucket(PerRequestBench.BUCKET).key(key).build();
        ExecutionAttributes attrs = new ExecutionAttributes();
        attrs.putAttribute(SdkExecutionAttribute.SERVICE_NAME, "S3");
        attrs.putAttribute(SdkInternalExecutionAttribute.SELECTED_AUTH_SCHEME, chosen);
        InterceptorContext before = InterceptorContext.builder().request(r).build();
        SdkRequest modified = with ? interceptor.modifyRequest(before, attrs) : r;
        InterceptorContext httpContext = InterceptorContext.builder().request(modified).httpRequest(http).build();
        if (with) {
          interceptor.modifyHttpRequest(httpContext, attrs);
        }
      }
    };
  }

  /** HeadObject through two S3FileIO-like clients, one with the hook. */
  static Side client(String[] keys, String endpoint) {
    S3Client hooked = s3(endpoint, new RoleAgentGlobalInterceptor());
    S3Client plain = s3(endpoint, null);
    return with -> {
      S3Client s3 = with ? hooked : plain;
      for (String key : keys) {
        s3.headObject(b -> b.bucket(PerRequestBench.BUCKET).key(key));
      }
    };
  }

  static S3Client s3(String endpoint, ExecutionInterceptor interceptor) {
    return S3Client.builder()
        .endpointOverride(URI.create(endpoint))
        .region(Region.US_EAST_1)
        .forcePathStyle(true)
        .httpClientBuilder(ApacheHttpClient.builder())
        .credentialsProvider(StaticCredentialsProvider.create(
            AwsSessionCredentials.create("ASIAOWNKEYS", "secret", "token")))
        .overrideConfiguration(c -> {
          if (interceptor != null) {
            c.addExecutionInterceptor(interceptor);
          }
        })
        .build();
  }
}
