/**
 * The part of the JVM clients that knows the agent and nothing of any AWS SDK.
 *
 * <ul>
 *   <li>{@link io.emrfsroleagent.agent.S3Locations}: S3 URIs as the agent compares them (s3a/s3n become s3).</li>
 *   <li>{@link io.emrfsroleagent.agent.AgentSettings}: endpoint, token file, timeouts, from the Hadoop
 *       configuration.</li>
 *   <li>{@link io.emrfsroleagent.agent.AgentClient}: one HTTP request to the agent, its answer or its error.</li>
 *   <li>{@link io.emrfsroleagent.agent.ScopeCache}: answers by {@code Scope}, longest match first, one fetch
 *       in flight per location, refreshed ahead of expiry.</li>
 *   <li>{@link io.emrfsroleagent.agent.AgentCredentials}: the credentials; its {@code toString()} shows no
 *       secret.</li>
 * </ul>
 *
 * The SDK-specific classes ({@code io.emrfsroleagent.emrfs} for SDK v1, {@code io.emrfsroleagent.sdk2} for
 * SDK v2) turn an S3 request into a location and an {@link io.emrfsroleagent.agent.AgentCredentials} into the
 * SDK's credentials type.
 */
package io.emrfsroleagent.agent;
