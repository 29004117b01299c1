package io.emrfsroleagent.sdk2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.time.Duration;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.AwsSessionCredentials;
import software.amazon.awssdk.auth.signer.AwsSignerExecutionAttribute;
import software.amazon.awssdk.awscore.AwsRequestOverrideConfiguration;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;

/**
 * How one SDK v2 request is made to sign with chosen credentials ({@link RequestCredentials}): the request's
 * credentials override (SDK 2.47 and later), and the signer's {@code AWS_CREDENTIALS} attribute (earlier ones),
 * with the real S3 request classes of the SDK on the class path.
 */
@Tag("sdk-v2")
@SuppressWarnings("deprecation") // AwsSignerExecutionAttribute.AWS_CREDENTIALS: what signs before SDK 2.47
final class RequestCredentialsTest {
  static final AwsCredentials CHOSEN = AwsSessionCredentials.create("ASIACHOSEN", "secret", "token");

  @Test
  @DisplayName("the request's override names the chosen credentials and keeps its other settings")
  void override() {
    GetObjectRequest request = GetObjectRequest.builder().bucket("b").key("k")
        .overrideConfiguration(o -> o.apiCallTimeout(Duration.ofSeconds(7))
            .credentialsProvider(() -> AwsBasicCredentials.create("AKIAOTHER", "other")))
        .build();
    ExecutionAttributes attributes = new ExecutionAttributes();
    SdkRequest out = RequestCredentials.override(request, CHOSEN, attributes);
    AwsRequestOverrideConfiguration o = ((GetObjectRequest) out).overrideConfiguration().get();
    assertEquals("ASIACHOSEN", o.credentialsProvider().get().resolveCredentials().accessKeyId(), "override");
    assertEquals(Duration.ofSeconds(7), o.apiCallTimeout().get(), "other settings kept");
    assertEquals("k", ((GetObjectRequest) out).key(), "the same request");
    assertEquals("AKIAOTHER", request.overrideConfiguration().get().credentialsProvider().get().resolveCredentials()
        .accessKeyId(), "the original request unchanged");

    GetObjectRequest plain = GetObjectRequest.builder().bucket("b").key("k").build();
    SdkRequest outPlain = RequestCredentials.override(plain, CHOSEN, new ExecutionAttributes());
    assertEquals("ASIACHOSEN", ((GetObjectRequest) outPlain).overrideConfiguration().get().credentialsProvider()
        .get().resolveCredentials().accessKeyId(), "a request without an override gets one");
  }

  @Test
  @DisplayName("sign() puts the chosen credentials where SDKs before 2.47 sign from, and only those")
  void sign() {
    ExecutionAttributes untouched = new ExecutionAttributes();
    RequestCredentials.sign(untouched);
    assertNull(untouched.getAttribute(AwsSignerExecutionAttribute.AWS_CREDENTIALS), "nothing chosen: nothing set");

    ExecutionAttributes attributes = new ExecutionAttributes();
    RequestCredentials.override(GetObjectRequest.builder().bucket("b").key("k").build(), CHOSEN, attributes);
    RequestCredentials.sign(attributes);
    assertSame(CHOSEN, attributes.getAttribute(AwsSignerExecutionAttribute.AWS_CREDENTIALS), "signer's credentials");
  }
}
