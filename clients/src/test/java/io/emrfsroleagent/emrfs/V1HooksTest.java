package io.emrfsroleagent.emrfs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.amazonaws.AmazonServiceException;
import com.amazonaws.SdkClientException;
import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration;
import com.amazonaws.services.s3.AmazonS3;
import com.amazonaws.services.s3.AmazonS3ClientBuilder;
import com.amazonaws.services.s3.model.AmazonS3Exception;
import com.amazonaws.services.s3.model.CopyObjectRequest;
import com.amazonaws.services.s3.model.GetObjectRequest;
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
import org.apache.hadoop.security.UserGroupInformation;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The SDK v1 hooks in a real SDK v1 S3 client against a fake agent and a fake S3 that records the signing key:
 * every request with a bucket decided per request (keyless ones for the bucket root), never signed with the
 * bucket-level provider's placeholder; refusals as S3's AccessDenied, which Hadoop S3A's own translation and
 * retry policy (hadoop-aws on the class path) fail at once; the bucket-level provider's placeholder and fixed
 * user.
 */
final class V1HooksTest {
  static final String SECRET = "SECRETsecretSECRETsecret0123456789abcdefXY";
  static final Instant T0 = Instant.now(); // the SDK signs with the wall clock; credentials must not be expired

  static Reply creds(String keyId, String scope) {
    return new Reply(200, "{\"AccessKeyId\":\"" + keyId + "\",\"SecretAccessKey\":\"" + SECRET
        + "\",\"Token\":\"TOKEN\",\"Expiration\":\""
        + T0.plus(Duration.ofHours(1)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS)
        + "\",\"RoleArn\":\"arn:aws:iam::222222222222:role/" + keyId + "\"" + (scope == null ? "" : ",\"Scope\":\""
        + scope + "\"") + "}");
  }

  static final Reply DENY = new Reply(403,
      "{\"code\":\"AccessDenied\",\"message\":\"denied by rule secret (deny)\",\"Scope\":\"s3://b/secret/\"}");

  /** b/secret/ denied; b/teamA/ and b/teamB/ two roles; the bucket root and the rest a third. */
  static Reply rules(String location) {
    if (location.startsWith("s3://b/secret/")) {
      return DENY;
    }
    if (location.startsWith("s3://b/teamA/")) {
      return creds("ASIATEAMA", "s3://b/teamA/");
    }
    if (location.startsWith("s3://b/teamB/")) {
      return creds("ASIATEAMB", "s3://b/teamB/");
    }
    if (location.startsWith("s3://b/broken/")) {
      return new Reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
    }
    if (location.startsWith("s3://b/bad/")) {
      return new Reply(400, "{\"code\":\"InvalidRequest\",\"message\":\"bad location\"}");
    }
    return creds("ASIAROOT", null);
  }

  static Configuration conf(FakeAgent agent) {
    Configuration conf = new Configuration(false);
    conf.set(RoleAgentCredentialsProvider.ENDPOINT_KEY, agent.endpoint());
    conf.set(RoleAgentCredentialsProvider.TOKEN_FILE_KEY, "");
    conf.set(HookWiring.V1_HANDLERS_KEY, RoleAgentRequestHandler.class.getName());
    return conf;
  }

  static AmazonS3 client(FakeS3 s3, FakeAgent agent) throws Exception {
    Configuration conf = conf(agent);
    RoleAgentCredentialsProvider provider =
        new RoleAgentCredentialsProvider(new URI("s3a://b/"), conf, new MovableClock(T0));
    RoleAgentRequestHandler handler = new RoleAgentRequestHandler(conf, new MovableClock(T0));
    return AmazonS3ClientBuilder.standard()
        .withEndpointConfiguration(new EndpointConfiguration(s3.endpoint(), "us-east-1"))
        .withPathStyleAccessEnabled(true)
        .withCredentials(provider)
        .withRequestHandlers(handler)
        .build();
  }

  @Test
  @DisplayName("every request with a bucket is signed by its own location's key, keyless ones by the root's")
  void everyRequestDecided() throws Exception {
    try (FakeAgent agent = new FakeAgent(V1HooksTest::rules); FakeS3 s3 = new FakeS3()) {
      AmazonS3 client = client(s3, agent);
      client.headBucket(new com.amazonaws.services.s3.model.HeadBucketRequest("b"));
      client.getObjectMetadata("b", "teamA/x%2Fy/caf\u00e9 1+1.csv");
      client.getObjectMetadata("b", "teamA/other");
      client.getObjectMetadata("b", "teamB/z");
      assertEquals(Arrays.asList("HEAD /b/ ASIAROOT", "HEAD /b/teamA/x%252Fy/caf%C3%A9%201%2B1.csv ASIATEAMA",
          "HEAD /b/teamA/other ASIATEAMA", "HEAD /b/teamB/z ASIATEAMB"), s3.requests, "signed by");
      assertEquals(Arrays.asList("s3://b/", "s3://b/teamA/x%2Fy/caf\u00e9 1+1.csv", "s3://b/teamB/z"),
          agent.locations, "asked for (teamA/other: a scope hit)");
      assertEquals(Arrays.asList("read", "read", "read"), agent.accesses, "access");
    }
  }

  @Test
  @DisplayName("a deny is S3's AccessDenied; S3A makes it AccessDeniedException and does not retry")
  void denyFailsFast() throws Exception {
    try (FakeAgent agent = new FakeAgent(V1HooksTest::rules); FakeS3 s3 = new FakeS3()) {
      AmazonS3 client = client(s3, agent);
      AmazonS3Exception e = expectS3Error(() -> client.getObject(new GetObjectRequest("b", "secret/plans.txt")));
      assertEquals(403, e.getStatusCode(), "status");
      assertEquals("AccessDenied", e.getErrorCode(), "code");
      assertEquals(AmazonServiceException.ErrorType.Client, e.getErrorType(), "type");
      assertEquals("Amazon S3", e.getServiceName(), "service");
      assertTrue(e.getErrorMessage().contains("emrfs-role-agent at " + agent.endpoint() + " refused credentials to read"
          + " s3://b/secret/plans.txt") && e.getErrorMessage().contains("HTTP 403 AccessDenied: denied by rule"
          + " secret (deny)"), e.getErrorMessage());
      assertTrue(!e.getMessage().contains(SECRET), "no secret");
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
    try (FakeAgent agent = new FakeAgent(V1HooksTest::rules); FakeS3 s3 = new FakeS3()) {
      AmazonS3 client = client(s3, agent);
      SdkClientException down = expectClientError(() -> client.getObjectMetadata("b", "broken/x"));
      assertTrue(!(down instanceof AmazonServiceException), "a client exception, not a service error: " + down);
      assertTrue(down.getMessage().contains("HTTP 503 CredentialsUnavailable"), down.getMessage());
      IOException translated = S3aErrors.translate("open", "s3a://b/broken/x", down);
      assertEquals("RETRY", S3aErrors.retryDecision(translated), "S3A retries an agent failure: " + translated);
      AmazonS3Exception bad = expectS3Error(() -> client.getObjectMetadata("b", "bad/x"));
      assertEquals(400, bad.getStatusCode(), "status");
      IOException badIo = S3aErrors.translate("open", "s3a://b/bad/x", bad);
      assertEquals("FAIL", S3aErrors.retryDecision(badIo), "S3A's retry policy: " + badIo);
    }
  }

  @Test
  @DisplayName("a copy across sessions fails at once as AccessDenied")
  void crossSessionCopy() throws Exception {
    try (FakeAgent agent = new FakeAgent(V1HooksTest::rules); FakeS3 s3 = new FakeS3()) {
      AmazonS3 client = client(s3, agent);
      AmazonS3Exception e = expectS3Error(() -> client.copyObject(
          new CopyObjectRequest("b", "teamA/report.csv", "b", "teamB/report.csv")));
      assertEquals(403, e.getStatusCode(), "status");
      assertTrue(e.getErrorMessage().startsWith("CopyObject from s3://b/teamA/report.csv to s3://b/teamB/report.csv"
          + " needs one set of credentials for both"), e.getErrorMessage());
      assertEquals("FAIL", S3aErrors.retryDecision(S3aErrors.translate("rename", "s3a://b/teamA/report.csv", e)),
          "S3A's retry policy");
      assertEquals(Arrays.asList("write", "read"), agent.accesses, "destination write, source read");
    }
  }

  @Test
  @DisplayName("the provider hands out a placeholder when the handler runs, asks the agent without it")
  void placeholder() throws Exception {
    try (FakeAgent agent = new FakeAgent(V1HooksTest::rules)) {
      Configuration conf = conf(agent);
      AWSCredentials c = new RoleAgentCredentialsProvider(new URI("s3a://b/"), conf, new MovableClock(T0))
          .getCredentials();
      assertEquals(HookWiring.PLACEHOLDER_ACCESS_KEY_ID, c.getAWSAccessKeyId(), "placeholder");
      assertEquals(0, agent.requests.get(), "the agent is not asked");
      conf.set("fs.s3.impl", "com.amazon.ws.emr.hadoop.fs.EmrFileSystem");
      AWSCredentials emrfs = new RoleAgentCredentialsProvider(new URI("s3://b/"), conf, new MovableClock(T0))
          .getCredentials();
      assertEquals("ASIAROOT", emrfs.getAWSAccessKeyId(), "EMRFS asks for the bucket whatever core-site says");
      conf.unset(HookWiring.V1_HANDLERS_KEY);
      new RoleAgentCredentialsProvider(new URI("s3a://b/"), conf, new MovableClock(T0)).getCredentials();
      assertEquals(Arrays.asList("s3://b/", "s3://b/"), agent.locations, "without the hook: the bucket");
      assertEquals(Arrays.asList(null, null), agent.accesses, "the bucket level sends no access");
    }
  }

  @Test
  @DisplayName("the provider's user is fixed when it is created")
  void userFixedAtCreation() throws Exception {
    try (FakeAgent agent = new FakeAgent(V1HooksTest::rules)) {
      Configuration conf = conf(agent);
      conf.unset(HookWiring.V1_HANDLERS_KEY);
      MovableClock clock = new MovableClock(T0);
      RoleAgentCredentialsProvider provider = UserGroupInformation.createRemoteUser("alice").doAs(
          (java.security.PrivilegedExceptionAction<RoleAgentCredentialsProvider>) () ->
              new RoleAgentCredentialsProvider(new URI("s3a://b/"), conf, clock));
      provider.getCredentials();
      clock.advance(Duration.ofMinutes(50)); // into the refresh window
      UserGroupInformation.createRemoteUser("mallory").doAs(
          (java.security.PrivilegedExceptionAction<AWSCredentials>) provider::getCredentials);
      assertEquals(2, agent.requests.get(), "refreshed");
      assertEquals("alice", agent.lastQuery.get("user"), "a refresh from another user's thread asks for the creator");
      assertTrue(provider.toString().contains("user=alice"), provider.toString());
    }
  }

  interface Call {
    void run() throws Exception;
  }

  static AmazonS3Exception expectS3Error(Call call) throws Exception {
    try {
      call.run();
    } catch (AmazonS3Exception e) {
      return e;
    }
    throw new AssertionError("expected an AmazonS3Exception");
  }

  static SdkClientException expectClientError(Call call) throws Exception {
    try {
      call.run();
    } catch (SdkClientException e) {
      return e;
    }
    throw new AssertionError("expected an SdkClientException");
  }
}
