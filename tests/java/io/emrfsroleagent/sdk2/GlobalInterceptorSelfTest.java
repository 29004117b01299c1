package io.emrfsroleagent.sdk2;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expect;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

import io.emrfsroleagent.testing.FakeAgent;
import io.emrfsroleagent.testing.FakeS3;
import java.net.URI;
import java.security.PrivilegedAction;
import java.time.Instant;
import org.apache.hadoop.security.UserGroupInformation;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * {@link RoleAgentGlobalInterceptor} in real SDK v2 S3 clients with Hadoop on the class path, against a fake
 * agent and a fake S3 that records the signing key: a client asks for the Hadoop user that built it (inside
 * {@code doAs} the impersonated one), whichever thread sends its requests; one scope cache per user for the JVM.
 * The interceptor is added to each client as the SDK adds it from the global list. Settings from system
 * properties.
 */
public final class GlobalInterceptorSelfTest {
  public static void main(String[] args) throws Exception {
    try (FakeAgent agent = new FakeAgent(); FakeS3 s3 = new FakeS3()) {
      agent.answerQuery = query -> new FakeAgent.Reply(200, "{\"AccessKeyId\":\"ASIA" + query.get("user")
          .toUpperCase() + "\",\"SecretAccessKey\":\"secret\",\"Token\":\"token\",\"Expiration\":\""
          + Instant.now().plusSeconds(3600) + "\",\"Scope\":\"s3://b/teamA/\"}");
      System.setProperty("emrfs-role-agent.endpoint", agent.endpoint());
      System.setProperty("emrfs-role-agent.token-file", "");
      System.setProperty("emrfs-role-agent.client-properties", "/nonexistent/client.properties");
      String login = UserGroupInformation.getLoginUser().getShortUserName();

      check("a client asks for the Hadoop user that built it, on any thread", () -> {
        S3Client alices = UserGroupInformation.createRemoteUser("alice")
            .doAs((PrivilegedAction<S3Client>) () -> client(s3.endpoint()));
        S3Client logins = client(s3.endpoint());
        alices.headObject(b -> b.bucket("b").key("teamA/x"));
        expectEquals("alice", agent.lastQuery.get("user"), "alice's client outside doAs");
        logins.headObject(b -> b.bucket("b").key("teamA/y"));
        expectEquals(login, agent.lastQuery.get("user"), "the login user's client");
        UserGroupInformation.createRemoteUser("bob").doAs((PrivilegedAction<Object>) () ->
            alices.headObject(b -> b.bucket("b").key("teamA/z")));
        expectEquals(2, agent.requests.get(), "alice's scope served her request made inside bob's doAs");
        expect(s3.requests.get(0).endsWith(" ASIAALICE") && s3.requests.get(2).endsWith(" ASIAALICE"),
            "alice's key signed both: " + s3.requests);
        expect(s3.requests.get(1).endsWith(" ASIA" + login.toUpperCase()), "login user's key: " + s3.requests);
      });
      check("clients of one user share the JVM's scope cache", () -> {
        S3Client another = UserGroupInformation.createRemoteUser("alice")
            .doAs((PrivilegedAction<S3Client>) () -> client(s3.endpoint()));
        another.headObject(b -> b.bucket("b").key("teamA/w"));
        expectEquals(2, agent.requests.get(), "no new agent request for alice's second client");
      });
    }
    finish();
  }

  static S3Client client(String endpoint) {
    return S3Client.builder()
        .endpointOverride(URI.create(endpoint))
        .region(Region.US_EAST_1)
        .forcePathStyle(true)
        .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIAOWN", "secret")))
        .overrideConfiguration(c -> c.addExecutionInterceptor(new RoleAgentGlobalInterceptor()))
        .build();
  }
}
