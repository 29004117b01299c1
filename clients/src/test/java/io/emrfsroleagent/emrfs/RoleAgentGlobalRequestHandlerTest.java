package io.emrfsroleagent.emrfs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.amazonaws.AmazonServiceException;
import com.amazonaws.SdkClientException;
import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration;
import com.amazonaws.handlers.RequestHandler2;
import com.amazonaws.services.s3.AmazonS3;
import com.amazonaws.services.s3.AmazonS3ClientBuilder;
import com.amazonaws.services.s3.model.AmazonS3Exception;
import com.amazonaws.services.s3.model.CopyObjectRequest;
import com.amazonaws.services.s3.model.DeleteObjectsRequest;
import com.amazonaws.services.s3.model.HeadBucketRequest;
import com.amazonaws.services.s3.model.ListObjectsV2Request;
import com.amazonaws.services.securitytoken.AWSSecurityTokenService;
import com.amazonaws.services.securitytoken.AWSSecurityTokenServiceClientBuilder;
import com.amazonaws.services.securitytoken.model.GetCallerIdentityRequest;
import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.FakeS3;
import io.emrfsroleagent.testing.JvmWideAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.security.PrivilegedAction;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.UserGroupInformation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * {@link RoleAgentGlobalRequestHandler} in real SDK v1 clients, added to each client as the SDK adds it from the
 * global list, against the JVM's fake agent ({@link JvmWideAgent}) and a fake S3 that records the signing key:
 * which location and access each S3 request asks for, that other services and S3A's own requests are left alone,
 * the Hadoop user that built a client, and refusals as S3's AccessDenied.
 */
final class RoleAgentGlobalRequestHandlerTest {
  static final String OWN_KEY = "AKIACLIENTSOWN";

  FakeAgent agent;
  FakeS3 s3;

  @BeforeEach
  void start() throws Exception {
    agent = JvmWideAgent.reset();
    s3 = new FakeS3();
  }

  @AfterEach
  void stop() {
    s3.close();
  }

  /** Keys named after the user and the access asked for (under copy/: the user only); no Scope: each location asks. */
  void answerByUserAndAccess() {
    agent.answerQuery = q -> new FakeAgent.Reply(200, "{\"AccessKeyId\":\"ASIA"
        + String.valueOf(q.get("user")).toUpperCase(Locale.ROOT)
        + (q.get("location").contains("/copy/") ? "COPY" : String.valueOf(q.get("access")).toUpperCase(Locale.ROOT))
        + "\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\",\"Expiration\":\"" + Instant.now().plusSeconds(3600)
        + "\"}");
  }

  AmazonS3 client(RequestHandler2... handlers) {
    return AmazonS3ClientBuilder.standard()
        .withEndpointConfiguration(new EndpointConfiguration(s3.endpoint(), "us-east-1"))
        .withPathStyleAccessEnabled(true)
        .withCredentials(new AWSStaticCredentialsProvider(new BasicAWSCredentials(OWN_KEY, "secret")))
        .withRequestHandlers(handlers)
        .build();
  }

  /** Runs {@code call}; an error parsing the fake S3's empty answer is not what these tests look at. */
  static void ignoringTheAnswer(Runnable call) {
    try {
      call.run();
    } catch (SdkClientException e) {
      // the fake S3 answers 200 with no body: fine for HEAD, not a listing
    }
  }

  List<String> asked() {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < agent.locations.size(); i++) {
      out.add(agent.locations.get(i) + " " + agent.accesses.get(i));
    }
    return out;
  }

  @Test
  @DisplayName("each S3 request asks for its own location and access, and is signed with the answer")
  void locationAndAccessPerRequest() throws Exception {
    answerByUserAndAccess();
    String u = UserGroupInformation.getCurrentUser().getShortUserName().toUpperCase(Locale.ROOT);
    AmazonS3 client = client(new RoleAgentGlobalRequestHandler());
    client.headBucket(new HeadBucketRequest("g1-loc"));
    client.getObjectMetadata("g1-loc", "teamA/x%2Fy/caf\u00e9 1+1.csv");
    ignoringTheAnswer(() -> client.putObject("g1-loc", "teamA/new", "data"));
    client.deleteObject("g1-loc", "teamA/old");
    ignoringTheAnswer(() -> client.listObjectsV2(new ListObjectsV2Request().withBucketName("g1-loc")
        .withPrefix("teamA/dir/")));
    ignoringTheAnswer(() -> client.deleteObjects(new DeleteObjectsRequest("g1-loc")
        .withKeys("teamA/dir/1", "teamA/dir/2")));
    ignoringTheAnswer(() -> client.copyObject(new CopyObjectRequest("g1-loc", "copy/src", "g1-loc", "copy/dst")));
    ignoringTheAnswer(client::listBuckets);
    assertEquals(Arrays.asList("s3://g1-loc/ read", "s3://g1-loc/teamA/x%2Fy/caf\u00e9 1+1.csv read",
        "s3://g1-loc/teamA/new write", "s3://g1-loc/teamA/old write", "s3://g1-loc/teamA/dir/ read",
        "s3://g1-loc/teamA/dir/ write",
        "s3://g1-loc/teamA/dir/1 write", "s3://g1-loc/teamA/dir/2 write", "s3://g1-loc/copy/dst write",
        "s3://g1-loc/copy/src read"), asked(),
        "asked for");
    List<String> signed = new ArrayList<>();
    for (String r : s3.requests) {
      signed.add(r.substring(0, r.indexOf(' ')) + " " + r.substring(r.lastIndexOf(' ') + 1));
    }
    assertEquals(Arrays.asList("HEAD ASIA" + u + "READ", "HEAD ASIA" + u + "READ", "PUT ASIA" + u + "WRITE",
        "DELETE ASIA" + u + "WRITE", "GET ASIA" + u + "READ", "POST ASIA" + u + "WRITE", "PUT ASIA" + u + "COPY",
        "GET " + OWN_KEY), signed, "signed with (ListBuckets names no bucket: the client's own key): "
        + s3.requests);
  }

  @Test
  @DisplayName("requests of other services keep their clients' credentials")
  void otherServicesLeftAlone() {
    answerByUserAndAccess();
    AWSSecurityTokenService sts = AWSSecurityTokenServiceClientBuilder.standard()
        .withEndpointConfiguration(new EndpointConfiguration(s3.endpoint(), "us-east-1"))
        .withCredentials(new AWSStaticCredentialsProvider(new BasicAWSCredentials(OWN_KEY, "secret")))
        .withRequestHandlers(new RoleAgentGlobalRequestHandler())
        .build();
    ignoringTheAnswer(() -> sts.getCallerIdentity(new GetCallerIdentityRequest()));
    assertEquals(0, agent.requests.get(), "the agent is not asked for STS");
    assertTrue(!s3.requests.isEmpty() && s3.requests.get(0).endsWith(" " + OWN_KEY),
        "signed by the client's own key: " + s3.requests);
  }

  /** A request of another service that names a bucket too (as Lightsail's CreateBucket does). */
  static final class OtherServiceRequest extends com.amazonaws.AmazonWebServiceRequest {
    public String getBucketName() {
      return "g1-other";
    }
  }

  @Test
  @DisplayName("another service's request that names a bucket is not S3's: left alone")
  void otherServicesBucketsLeftAlone() {
    answerByUserAndAccess();
    OtherServiceRequest request = new OtherServiceRequest();
    new RoleAgentGlobalRequestHandler().beforeExecution(request);
    assertEquals(0, agent.requests.get(), "the agent is not asked");
    assertEquals(null, request.getRequestCredentialsProvider(), "the client's own credentials");
  }

  @Test
  @DisplayName("a request S3A's own handler decides is left to it: one decision per request")
  void s3aRequestsLeftToS3a() throws Exception {
    answerByUserAndAccess();
    try (FakeAgent s3asAgent = new FakeAgent()) {
      s3asAgent.reply(200, "{\"AccessKeyId\":\"ASIAS3A\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\","
          + "\"Expiration\":\"" + Instant.now().plusSeconds(3600) + "\"}");
      Configuration conf = new Configuration(false);
      conf.set(AgentSettings.ENDPOINT_KEY, s3asAgent.endpoint());
      conf.set(AgentSettings.TOKEN_FILE_KEY, "");
      // The SDK runs a client's own handlers (S3A's) before the JVM-wide ones.
      AmazonS3 client = client(new RoleAgentRequestHandler(conf, new MovableClock(Instant.now())),
          new RoleAgentGlobalRequestHandler());
      client.getObjectMetadata("g1-s3a", "teamA/x");
      assertEquals(0, agent.requests.get(), "the JVM-wide hook did not ask");
      assertEquals(Arrays.asList("s3://g1-s3a/teamA/x"), s3asAgent.locations, "S3A's hook asked");
      assertTrue(s3.requests.get(0).endsWith(" ASIAS3A"), s3.requests.toString());
    }
  }

  @Test
  @DisplayName("a refusal is S3's AccessDenied and nothing reaches S3; a failure says where the settings came from")
  void refusalsAndFailures() {
    agent.answer = loc -> loc.startsWith("s3://g1-err/secret/")
        ? new FakeAgent.Reply(403, "{\"code\":\"AccessDenied\",\"message\":\"denied by rule secret (deny)\"}")
        : new FakeAgent.Reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
    AmazonS3 client = client(new RoleAgentGlobalRequestHandler());
    AmazonS3Exception denied = assertThrows(AmazonS3Exception.class,
        () -> client.getObjectMetadata("g1-err", "secret/plans.txt"));
    assertEquals(403, denied.getStatusCode(), "status");
    assertEquals("AccessDenied", denied.getErrorCode(), "code");
    assertEquals(AmazonServiceException.ErrorType.Client, denied.getErrorType(), "type");
    assertTrue(denied.getErrorMessage().contains("denied by rule secret (deny)"), denied.getErrorMessage());
    SdkClientException failed = assertThrows(SdkClientException.class,
        () -> client.getObjectMetadata("g1-err", "other/x"));
    assertTrue(!(failed instanceof AmazonServiceException) && failed.getMessage().contains(
        "HTTP 503 CredentialsUnavailable") && failed.getMessage().contains("[JVM-wide S3 hooks,"
        + " emrfs-role-agent-hooks.jar: endpoint from system property emrfs-role-agent.endpoint"),
        failed.getMessage());
    assertEquals(0, s3.requests.size(), "nothing reached S3");
  }

  @Test
  @DisplayName("a client asks for the Hadoop user that built it, on any thread")
  void clientUser() throws Exception {
    answerByUserAndAccess();
    AmazonS3 alices = UserGroupInformation.createRemoteUser("alice")
        .doAs((PrivilegedAction<AmazonS3>) () -> client(new RoleAgentGlobalRequestHandler()));
    UserGroupInformation.createRemoteUser("bob").doAs((PrivilegedAction<Object>) () ->
        alices.getObjectMetadata("g1-users", "teamA/z"));
    assertEquals("alice", agent.lastQuery.get("user"), "alice's client inside bob's doAs");
    assertTrue(s3.requests.get(0).endsWith(" ASIAALICEREAD"), s3.requests.toString());
  }
}
