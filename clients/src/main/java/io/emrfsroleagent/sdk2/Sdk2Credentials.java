package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.AgentCredentials;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.AwsSessionCredentials;

/** The agent's credentials as SDK v2 credentials (their {@code toString()} redacts the secrets). */
public final class Sdk2Credentials {
  private Sdk2Credentials() {}

  public static AwsCredentials of(AgentCredentials c) {
    return c.sessionToken() == null
        ? AwsBasicCredentials.create(c.accessKeyId(), c.secretAccessKey())
        : AwsSessionCredentials.create(c.accessKeyId(), c.secretAccessKey(), c.sessionToken());
  }
}
