package io.emrfsroleagent.sdk2;

import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.AwsRequest;
import software.amazon.awssdk.awscore.AwsRequestOverrideConfiguration;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.core.interceptor.ExecutionAttribute;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;

/**
 * How an interceptor makes one SDK v2 request sign with chosen credentials, on every SDK v2 version with
 * identity-based signing (2.21 and later): {@link #override} in {@code modifyRequest} sets them as the
 * request's credentials override, which SDK 2.47 and later honour (they resolve the identity after
 * {@code modifyRequest}); earlier versions resolved the identity in {@code beforeExecution} and ignore that
 * override (aws-sdk-java-v2 #5534), so {@link #sign} in {@code modifyHttpRequest} also writes them into
 * {@code AwsSignerExecutionAttribute.AWS_CREDENTIALS}, which replaces the identity of the auth scheme those
 * versions chose. Later versions re-resolve the identity from the override after that hook, so both paths sign
 * with the same credentials.
 */
final class RequestCredentials {
  /** The credentials {@link #override} chose for this request. */
  private static final ExecutionAttribute<AwsCredentials> CHOSEN =
      new ExecutionAttribute<>("emrfs-role-agent.RequestCredentials");

  private RequestCredentials() {}

  /** {@code request} with {@code credentials} as its credentials override (remembered for {@link #sign}). */
  static SdkRequest override(SdkRequest request, AwsCredentials credentials, ExecutionAttributes attributes) {
    if (!(request instanceof AwsRequest)) {
      return request;
    }
    attributes.putAttribute(CHOSEN, credentials);
    AwsRequest aws = (AwsRequest) request;
    AwsRequestOverrideConfiguration.Builder override = aws.overrideConfiguration()
        .map(AwsRequestOverrideConfiguration::toBuilder)
        .orElseGet(AwsRequestOverrideConfiguration::builder);
    return aws.toBuilder()
        .overrideConfiguration(override.credentialsProvider(StaticCredentialsProvider.create(credentials)).build())
        .build();
  }

  /** Puts the credentials {@link #override} chose into the auth scheme that signs on SDKs before 2.47. */
  @SuppressWarnings("deprecation") // AWS_CREDENTIALS: what signs the request on SDKs before 2.47
  static void sign(ExecutionAttributes attributes) {
    AwsCredentials credentials = attributes.getAttribute(CHOSEN);
    if (credentials != null) {
      attributes.putAttribute(software.amazon.awssdk.auth.signer.AwsSignerExecutionAttribute.AWS_CREDENTIALS,
          credentials);
    }
  }
}
