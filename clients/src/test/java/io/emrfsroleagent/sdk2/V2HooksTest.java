package io.emrfsroleagent.sdk2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.agent.HookWiring;
import io.emrfsroleagent.testing.FakeAgent.Reply;
import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.FakeS3;
import io.emrfsroleagent.testing.MovableClock;
import io.emrfsroleagent.testing.S3aErrors;
import java.io.IOException;
import java.net.URI;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkServiceException;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.CopyObjectRequest;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.HeadBucketRequest;
import software.amazon.awssdk.services.s3.model.HeadObjectRequest;
import software.amazon.awssdk.services.s3.model.S3Exception;

/**
 * The SDK v2 hooks in a real SDK v2 S3 client (whatever version is on the class path: 2.24.6, which resolves
 * the client's identity before any interceptor runs, and a current one) against a fake agent and a fake S3 that
 * records the signing key: every request with a bucket decided per request (keyless ones for the bucket root),
 * never signed with the bucket-level provider's placeholder; refusals as S3's AccessDenied, which Hadoop S3A
 * 3.4's own translation and retry policy fail at once (so only on Hadoop 3.4: tag {@code hadoop-3.4}).
 */
@Tag("sdk-v2")
@Tag("hadoop-3.4")
final class V2HooksTest {
  static final String SECRET = "SECRETsecretSECRETsecret0123456789abcdefXY";
  static final Instant T0 = Instant.now(); // the SDK signs with the wall clock; credentials must not be expired

  static Reply creds(String keyId, String scope) {
    return new Reply(200, "{\"AccessKeyId\":\"" + keyId + "\",\"SecretAccessKey\":\"" + SECRET
        + "\",\"Token\":\"TOKEN\",\"Expiration\":\""
        + T0.plus(Duration.ofHours(1)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS)
        + "\",\"RoleArn\":\"arn:aws:iam::222222222222:role/" + keyId + "\"" + (scope == null ? "" : ",\"Scope\":\""
        + scope + "\"") + "}");
  }

  /** b/secret/ denied; b/teamA/ and b/teamB/ two roles; the bucket root a third; the rest failing. */
  static Reply rules(String location) {
    if (location.startsWith("s3://b/secret/")) {
      return new Reply(403, "{\"code\":\"AccessDenied\",\"message\":\"denied by rule secret (deny)\","
          + "\"Scope\":\"s3://b/secret/\"}");
    }
    if (location.startsWith("s3://b/teamA/")) {
      return creds("ASIATEAMA", "s3://b/teamA/");
    }
    if (location.startsWith("s3://b/teamB/")) {
      return creds("ASIATEAMB", "s3://b/teamB/");
    }
    if (location.equals("s3://b/")) {
      return creds("ASIAROOT", null);
    }
    if (location.startsWith("s3://b/bad/")) {
      return new Reply(400, "{\"code\":\"InvalidRequest\",\"message\":\"bad location\"}");
    }
    return new Reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
  }

  static Configuration conf(FakeAgent agent) {
    Configuration conf = new Configuration(false);
    conf.set(AgentSettings.ENDPOINT_KEY, agent.endpoint());
    conf.set(AgentSettings.TOKEN_FILE_KEY, "");
    conf.set(HookWiring.V2_INTERCEPTORS_KEY, RoleAgentExecutionInterceptor.class.getName());
    return conf;
  }

  /** As S3A 3.4 builds it: the bucket-level provider as the client's, the interceptor added. */
  static S3Client client(FakeS3 s3, FakeAgent agent) throws Exception {
    Configuration conf = conf(agent);
    RoleAgentAwsCredentialsProvider provider =
        new RoleAgentAwsCredentialsProvider(new URI("s3a://b/"), conf, new MovableClock(T0));
    RoleAgentExecutionInterceptor interceptor = new RoleAgentExecutionInterceptor(conf, new MovableClock(T0));
    return S3Client.builder()
        .endpointOverride(URI.create(s3.endpoint()))
        .forcePathStyle(true)
        .region(Region.US_EAST_1)
        .httpClientBuilder(ApacheHttpClient.builder())
        .credentialsProvider(provider)
        .overrideConfiguration(c -> c.addExecutionInterceptor(interceptor).retryPolicy(r -> r.numRetries(0)))
        .build();
  }

  @Test
  @DisplayName("every request with a bucket is signed by its own location's key, keyless ones by the root's")
  void everyRequestDecided() throws Exception {
    try (FakeAgent agent = new FakeAgent(V2HooksTest::rules); FakeS3 s3 = new FakeS3();
        S3Client client = client(s3, agent)) {
      client.headBucket(HeadBucketRequest.builder().bucket("b").build());
      client.headObject(HeadObjectRequest.builder().bucket("b").key("teamA/x%2Fy/caf\u00e9 1+1.csv").build());
      client.headObject(HeadObjectRequest.builder().bucket("b").key("teamA/other").build());
      client.headObject(HeadObjectRequest.builder().bucket("b").key("teamB/z").build());
      assertEquals(Arrays.asList("HEAD /b ASIAROOT", "HEAD /b/teamA/x%252Fy/caf%C3%A9%201%2B1.csv ASIATEAMA",
          "HEAD /b/teamA/other ASIATEAMA", "HEAD /b/teamB/z ASIATEAMB"), s3.requests, "signed by");
      assertEquals(Arrays.asList("s3://b/", "s3://b/teamA/x%2Fy/caf\u00e9 1+1.csv", "s3://b/teamB/z"),
          agent.locations, "asked for (teamA/other: a scope hit; never for the provider)");
      assertEquals(Arrays.asList("read", "read", "read"), agent.accesses, "access");
    }
  }

  @Test
  @DisplayName("a deny is S3's AccessDenied; S3A makes it AccessDeniedException and does not retry")
  void denyFailsFast() throws Exception {
    try (FakeAgent agent = new FakeAgent(V2HooksTest::rules); FakeS3 s3 = new FakeS3();
        S3Client client = client(s3, agent)) {
      S3Exception e = expectS3Error(() -> client.getObject(
          GetObjectRequest.builder().bucket("b").key("secret/plans.txt").build()));
      assertEquals(403, e.statusCode(), "status");
      assertEquals("AccessDenied", e.awsErrorDetails().errorCode(), "code");
      assertTrue(e.getMessage().contains("emrfs-role-agent at " + agent.endpoint() + " refused credentials to read"
          + " s3://b/secret/plans.txt") && e.getMessage().contains("HTTP 403 AccessDenied: denied by rule"
          + " secret (deny)"), e.getMessage());
      assertTrue(!e.getMessage().contains(SECRET), "no secret");
      assertTrue(!e.retryable(), "not retryable for the SDK");
      assertEquals(0, s3.requests.size(), "nothing reached S3");
      IOException translated = S3aErrors.translate("open", "s3a://b/secret/plans.txt", e);
      assertEquals("java.nio.file.AccessDeniedException", translated.getClass().getName(), "S3A's exception");
      assertTrue(translated.getMessage().contains("denied by rule secret (deny)"), translated.getMessage());
      assertEquals("FAIL", S3aErrors.retryDecision(translated), "S3A's retry policy");
    }
  }

  @Test
  @DisplayName("agent failures stay retryable; an invalid request fails as a bad request")
  void otherErrors() throws Exception {
    try (FakeAgent agent = new FakeAgent(V2HooksTest::rules); FakeS3 s3 = new FakeS3();
        S3Client client = client(s3, agent)) {
      SdkClientException down = null;
      try {
        client.headObject(HeadObjectRequest.builder().bucket("b").key("broken/x").build());
      } catch (SdkClientException e) {
        down = e;
      }
      assertTrue(down != null, "expected an SdkClientException");
      assertTrue(down.getMessage().contains("HTTP 503 CredentialsUnavailable"), down.getMessage());
      IOException translated = S3aErrors.translate("open", "s3a://b/broken/x", down);
      assertEquals("RETRY", S3aErrors.retryDecision(translated), "S3A retries an agent failure: " + translated);
      S3Exception bad = expectS3Error(() -> client.headObject(
          HeadObjectRequest.builder().bucket("b").key("bad/x").build()));
      assertEquals(400, bad.statusCode(), "status");
      IOException badIo = S3aErrors.translate("open", "s3a://b/bad/x", bad);
      assertEquals("FAIL", S3aErrors.retryDecision(badIo), "S3A's retry policy: " + badIo);
    }
  }

  @Test
  @DisplayName("a copy across sessions fails at once as AccessDenied")
  void crossSessionCopy() throws Exception {
    try (FakeAgent agent = new FakeAgent(V2HooksTest::rules); FakeS3 s3 = new FakeS3();
        S3Client client = client(s3, agent)) {
      S3Exception e = expectS3Error(() -> client.copyObject(CopyObjectRequest.builder().sourceBucket("b")
          .sourceKey("teamA/report.csv").destinationBucket("b").destinationKey("teamB/report.csv").build()));
      assertEquals(403, e.statusCode(), "status");
      assertTrue(e.getMessage().startsWith("CopyObject from s3://b/teamA/report.csv to s3://b/teamB/report.csv"
          + " needs one set of credentials for both"), e.getMessage());
      assertEquals("FAIL", S3aErrors.retryDecision(S3aErrors.translate("rename", "s3a://b/teamA/report.csv", e)),
          "S3A's retry policy");
      assertEquals(Arrays.asList("write", "read"), agent.accesses, "destination write, source read");
    }
  }

  @Test
  @DisplayName("the provider hands out a placeholder when the interceptor runs, asks the agent without it")
  void placeholder() throws Exception {
    try (FakeAgent agent = new FakeAgent(V2HooksTest::rules)) {
      Configuration conf = conf(agent);
      AwsCredentials c = new RoleAgentAwsCredentialsProvider(new URI("s3a://b/"), conf, new MovableClock(T0))
          .resolveCredentials();
      assertEquals(HookWiring.PLACEHOLDER_ACCESS_KEY_ID, c.accessKeyId(), "placeholder");
      assertTrue(!c.toString().contains(c.secretAccessKey()), "its toString shows no secret");
      assertEquals(0, agent.requests.get(), "the agent is not asked");
      conf.unset(HookWiring.V2_INTERCEPTORS_KEY);
      AwsCredentials bucket = new RoleAgentAwsCredentialsProvider(new URI("s3a://b/"), conf, new MovableClock(T0))
          .resolveCredentials();
      assertEquals("ASIAROOT", bucket.accessKeyId(), "without the hook: the bucket's");
      assertEquals(Arrays.asList("s3://b/"), agent.locations, "asked for the bucket");
      assertEquals(Arrays.asList((String) null), agent.accesses, "the bucket level sends no access");
    }
  }

  interface Call {
    void run() throws Exception;
  }

  static S3Exception expectS3Error(Call call) throws Exception {
    try {
      call.run();
    } catch (S3Exception e) {
      return e;
    } catch (SdkServiceException e) {
      throw new AssertionError("a service exception that is not S3's: " + e, e);
    }
    throw new AssertionError("expected an S3Exception");
  }
}
