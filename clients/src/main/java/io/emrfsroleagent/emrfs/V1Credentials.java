package io.emrfsroleagent.emrfs;

import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.auth.AWSCredentialsProvider;
import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.auth.BasicSessionCredentials;
import io.emrfsroleagent.agent.AgentCredentials;

/** The agent's credentials as an SDK v1 credentials provider (no Hadoop needed, unlike the S3A classes). */
final class V1Credentials {
  private V1Credentials() {}

  /** Session credentials, or basic ones for long-term keys (the agent's fallback fed by static keys). */
  static AWSCredentials credentials(AgentCredentials c) {
    return c.sessionToken() == null
        ? new BasicAWSCredentials(c.accessKeyId(), c.secretAccessKey())
        : new BasicSessionCredentials(c.accessKeyId(), c.secretAccessKey(), c.sessionToken());
  }

  static AWSCredentialsProvider provider(AgentCredentials c) {
    return new AWSStaticCredentialsProvider(credentials(c));
  }
}
