package io.emrfsroleagent.e2e;

import java.net.URI;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.sts.StsClient;
import software.amazon.awssdk.services.sts.model.GetCallerIdentityResponse;

/**
 * The AWS SDK for Java v2's own {@code ContainerCredentialsProvider} against the agent (the container
 * environment comes from the test: {@code AWS_CONTAINER_CREDENTIALS_FULL_URI} and the token or token file), then
 * the credentials used: STS GetCallerIdentity at {@code STS_ENDPOINT}.
 *
 * Prints {@code KEY <access key id>} and {@code ARN <caller arn>}, or {@code ERROR <exception>}.
 */
public final class ContainerCredentialsProbe {
  public static void main(String[] args) {
    try {
      AwsCredentials creds = ContainerCredentialsProvider.builder().build().resolveCredentials();
      System.out.println("KEY " + creds.accessKeyId());
      try (StsClient sts = StsClient.builder()
          .endpointOverride(URI.create(System.getenv("STS_ENDPOINT")))
          .region(Region.US_EAST_1)
          .httpClientBuilder(ApacheHttpClient.builder())
          .credentialsProvider(StaticCredentialsProvider.create(creds))
          .build()) {
        GetCallerIdentityResponse who = sts.getCallerIdentity();
        System.out.println("ARN " + who.arn());
      }
    } catch (RuntimeException e) {
      System.out.println("ERROR " + e);
      System.exit(1);
    }
  }
}
