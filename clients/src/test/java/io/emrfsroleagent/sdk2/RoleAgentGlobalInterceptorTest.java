package io.emrfsroleagent.sdk2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.emrfsroleagent.agent.AgentSettings;
import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.FakeS3;
import io.emrfsroleagent.testing.JvmWideAgent;
import io.emrfsroleagent.testing.MovableClock;
import java.net.URI;
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
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.S3Exception;
import software.amazon.awssdk.services.sts.StsClient;

/**
 * {@link RoleAgentGlobalInterceptor} in real SDK v2 clients, added to each client as the SDK adds it from the
 * global list, against the JVM's fake agent ({@link JvmWideAgent}: the hooks' settings and caches are the JVM's)
 * and a fake S3 that records the signing key: which location and access each S3 request asks for, that other
 * services and S3A's own requests are left alone, the Hadoop user that built a client (inside {@code doAs} the
 * impersonated one) whichever thread sends its requests, and refusals as S3's AccessDenied.
 */
@Tag("sdk-v2")
final class RoleAgentGlobalInterceptorTest {
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

  /** Keys named after the user and the access asked for (under copy/: the user only), with {@code scope} (or none). */
  void answerByUserAndAccess(String scope) {
    agent.answerQuery = q -> new FakeAgent.Reply(200, "{\"AccessKeyId\":\"ASIA"
        + String.valueOf(q.get("user")).toUpperCase(Locale.ROOT)
        + (q.get("location").contains("/copy/") ? "COPY" : String.valueOf(q.get("access")).toUpperCase(Locale.ROOT))
        + "\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\",\"Expiration\":\"" + Instant.now().plusSeconds(3600)
        + "\"" + (scope == null ? "" : ",\"Scope\":\"" + scope + "\"") + "}");
  }

  S3Client client(ExecutionInterceptor... interceptors) {
    return S3Client.builder()
        .endpointOverride(URI.create(s3.endpoint()))
        .region(Region.US_EAST_1)
        .forcePathStyle(true)
        .httpClientBuilder(ApacheHttpClient.builder())
        .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create(OWN_KEY, "secret")))
        .overrideConfiguration(c -> {
          for (ExecutionInterceptor i : interceptors) {
            c.addExecutionInterceptor(i);
          }
          c.retryPolicy(r -> r.numRetries(0));
        })
        .build();
  }

  /** Runs {@code call}; an error parsing the fake S3's empty answer is not what these tests look at. */
  static void ignoringTheAnswer(Runnable call) {
    try {
      call.run();
    } catch (SdkClientException e) {
      // the fake S3 answers 200 with no body: fine for HEAD and PUT, not a listing
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
  void locationAndAccessPerRequest() {
    answerByUserAndAccess(null);
    String login = currentUser();
    S3Client client = client(new RoleAgentGlobalInterceptor());
    client.headBucket(b -> b.bucket("g2-loc"));
    client.headObject(b -> b.bucket("g2-loc").key("teamA/x%2Fy/caf\u00e9 1+1.csv"));
    client.putObject(b -> b.bucket("g2-loc").key("teamA/new"), RequestBody.fromString("data"));
    client.deleteObject(b -> b.bucket("g2-loc").key("teamA/old"));
    ignoringTheAnswer(() -> client.listObjectsV2(b -> b.bucket("g2-loc").prefix("teamA/dir/")));
    ignoringTheAnswer(() -> client.copyObject(b -> b.sourceBucket("g2-loc").sourceKey("copy/src")
        .destinationBucket("g2-loc").destinationKey("copy/dst")));
    ignoringTheAnswer(() -> client.listBuckets());
    assertEquals(Arrays.asList("s3://g2-loc/ read", "s3://g2-loc/teamA/x%2Fy/caf\u00e9 1+1.csv read",
        "s3://g2-loc/teamA/new write", "s3://g2-loc/teamA/old write", "s3://g2-loc/teamA/dir/ read",
        "s3://g2-loc/copy/dst write", "s3://g2-loc/copy/src read"), asked(), "asked for");
    String u = login.toUpperCase(Locale.ROOT);
    List<String> signed = new ArrayList<>();
    for (String r : s3.requests) {
      signed.add(r.substring(0, r.indexOf(' ')) + " " + r.substring(r.lastIndexOf(' ') + 1));
    }
    assertEquals(Arrays.asList("HEAD ASIA" + u + "READ", "HEAD ASIA" + u + "READ", "PUT ASIA" + u + "WRITE",
        "DELETE ASIA" + u + "WRITE", "GET ASIA" + u + "READ", "PUT ASIA" + u + "COPY", "GET " + OWN_KEY), signed,
        "signed with (ListBuckets names no bucket: the client's own key): " + s3.requests);
  }

  @Test
  @DisplayName("requests of other services keep their clients' credentials")
  void otherServicesLeftAlone() {
    answerByUserAndAccess(null);
    StsClient sts = StsClient.builder()
        .endpointOverride(URI.create(s3.endpoint()))
        .region(Region.US_EAST_1)
        .httpClientBuilder(ApacheHttpClient.builder())
        .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create(OWN_KEY, "secret")))
        .overrideConfiguration(c -> c.addExecutionInterceptor(new RoleAgentGlobalInterceptor())
            .retryPolicy(r -> r.numRetries(0)))
        .build();
    ignoringTheAnswer(sts::getCallerIdentity);
    assertEquals(0, agent.requests.get(), "the agent is not asked for STS");
    assertEquals(1, s3.requests.size(), "the STS request went out");
    assertTrue(s3.requests.get(0).endsWith(" " + OWN_KEY), "signed by the client's own key: " + s3.requests);
  }

  @Test
  @DisplayName("a request the SDK does not run for S3 is left alone, whatever its class")
  void notS3sExecutionLeftAlone() {
    answerByUserAndAccess(null);
    software.amazon.awssdk.core.SdkRequest request =
        software.amazon.awssdk.services.s3.model.HeadObjectRequest.builder().bucket("g2-other").key("k").build();
    software.amazon.awssdk.core.interceptor.ExecutionAttributes attributes =
        new software.amazon.awssdk.core.interceptor.ExecutionAttributes();
    attributes.putAttribute(software.amazon.awssdk.core.interceptor.SdkExecutionAttribute.SERVICE_NAME, "S3Control");
    software.amazon.awssdk.core.interceptor.Context.ModifyRequest context = () -> request;
    assertSame(request, new RoleAgentGlobalInterceptor().modifyRequest(context, attributes), "unchanged");
    assertEquals(0, agent.requests.get(), "the agent is not asked");
  }

  @Test
  @DisplayName("a request S3A's own interceptor decides is left to it: one decision per request")
  void s3aRequestsLeftToS3a() throws Exception {
    answerByUserAndAccess(null);
    try (FakeAgent s3asAgent = new FakeAgent()) {
      s3asAgent.reply(200, "{\"AccessKeyId\":\"ASIAS3A\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\","
          + "\"Expiration\":\"" + Instant.now().plusSeconds(3600) + "\"}");
      Configuration conf = new Configuration(false);
      conf.set(AgentSettings.ENDPOINT_KEY, s3asAgent.endpoint());
      conf.set(AgentSettings.TOKEN_FILE_KEY, "");
      RoleAgentExecutionInterceptor s3a = new RoleAgentExecutionInterceptor(conf, new MovableClock(Instant.now()));
      // The SDK runs the JVM-wide interceptors before the client's own: S3A's claims in beforeExecution first.
      S3Client client = client(new RoleAgentGlobalInterceptor(), s3a);
      client.headObject(b -> b.bucket("g2-s3a").key("teamA/x"));
      assertEquals(0, agent.requests.get(), "the JVM-wide hook did not ask");
      assertEquals(Arrays.asList("s3://g2-s3a/teamA/x"), s3asAgent.locations, "S3A's hook asked");
      assertTrue(s3.requests.get(0).endsWith(" ASIAS3A"), s3.requests.toString());
    }
  }

  @Test
  @DisplayName("a refusal is S3's AccessDenied and nothing reaches S3; a failure says where the settings came from")
  void refusalsAndFailures() {
    agent.answer = loc -> loc.startsWith("s3://g2-err/secret/")
        ? new FakeAgent.Reply(403, "{\"code\":\"AccessDenied\",\"message\":\"denied by rule secret (deny)\"}")
        : new FakeAgent.Reply(503, "{\"code\":\"CredentialsUnavailable\",\"message\":\"STS is failing\"}");
    S3Client client = client(new RoleAgentGlobalInterceptor());
    S3Exception denied = assertThrows(S3Exception.class,
        () -> client.headObject(b -> b.bucket("g2-err").key("secret/plans.txt")));
    assertEquals(403, denied.statusCode(), "status");
    assertEquals("AccessDenied", denied.awsErrorDetails().errorCode(), "code");
    assertTrue(denied.getMessage().contains("denied by rule secret (deny)"), denied.getMessage());
    SdkClientException failed = assertThrows(SdkClientException.class,
        () -> client.headObject(b -> b.bucket("g2-err").key("other/x")));
    assertTrue(failed.getMessage().contains("HTTP 503 CredentialsUnavailable")
        && failed.getMessage().contains("[JVM-wide S3 hooks, emrfs-role-agent-hooks.jar: endpoint from system"
        + " property emrfs-role-agent.endpoint"), failed.getMessage());
    assertEquals(0, s3.requests.size(), "nothing reached S3");
  }

  @Test
  @DisplayName("a client asks for the Hadoop user that built it, on any thread; one cache per user for the JVM")
  void clientUser() {
    answerByUserAndAccess("s3://g2-users/teamA/");
    String login = currentUser();
    S3Client alices = UserGroupInformation.createRemoteUser("alice")
        .doAs((PrivilegedAction<S3Client>) () -> client(new RoleAgentGlobalInterceptor()));
    S3Client logins = client(new RoleAgentGlobalInterceptor());
    alices.headObject(b -> b.bucket("g2-users").key("teamA/x"));
    assertEquals("alice", agent.lastQuery.get("user"), "alice's client outside doAs");
    logins.headObject(b -> b.bucket("g2-users").key("teamA/y"));
    assertEquals(login, agent.lastQuery.get("user"), "the login user's client");
    UserGroupInformation.createRemoteUser("bob").doAs((PrivilegedAction<Object>) () ->
        alices.headObject(b -> b.bucket("g2-users").key("teamA/z")));
    assertEquals(2, agent.requests.get(), "alice's scope served her request made inside bob's doAs");
    assertTrue(s3.requests.get(0).endsWith(" ASIAALICEREAD") && s3.requests.get(2).endsWith(" ASIAALICEREAD"),
        "alice's key signed both: " + s3.requests);
    assertTrue(s3.requests.get(1).endsWith(" ASIA" + login.toUpperCase(Locale.ROOT) + "READ"),
        "login user's key: " + s3.requests);

    S3Client another = UserGroupInformation.createRemoteUser("alice")
        .doAs((PrivilegedAction<S3Client>) () -> client(new RoleAgentGlobalInterceptor()));
    another.headObject(b -> b.bucket("g2-users").key("teamA/w"));
    assertEquals(2, agent.requests.get(), "no new agent request for alice's second client");
  }

  static String currentUser() {
    try {
      return UserGroupInformation.getCurrentUser().getShortUserName();
    } catch (java.io.IOException e) {
      throw new AssertionError(e);
    }
  }
}
