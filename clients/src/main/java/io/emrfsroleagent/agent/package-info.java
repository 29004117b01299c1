/**
 * The part of the JVM clients that knows the agent and nothing of any AWS SDK.
 *
 * <ul>
 *   <li>{@link io.emrfsroleagent.agent.S3Locations}: S3 URIs as the agent compares them (s3a/s3n become s3).</li>
 *   <li>{@link io.emrfsroleagent.agent.AgentSettings}: endpoint, token file, timeouts, from the Hadoop
 *       configuration.</li>
 *   <li>{@link io.emrfsroleagent.agent.AgentClient}: one HTTP request to the agent (the literal key encoded
 *       once, the access), its answer or its error ({@link io.emrfsroleagent.agent.AgentException}, sorted by
 *       what the caller does next: refused, invalid, unavailable).</li>
 *   <li>{@link io.emrfsroleagent.agent.ScopeCache}: answers by access and literal {@code Scope}, longest match
 *       first, one fetch in flight per location, refreshed ahead of expiry (and for the location itself when
 *       the refreshed scope no longer covers it).</li>
 *   <li>{@link io.emrfsroleagent.agent.RequestLocation} and {@link io.emrfsroleagent.agent.Access}: where an S3
 *       request goes and whether it reads or writes; copies and bulk deletes served by one session.</li>
 *   <li>{@link io.emrfsroleagent.agent.HookWiring}: whether a filesystem runs the per-request hook, and the
 *       placeholder its bucket-level provider hands out then.</li>
 *   <li>{@link io.emrfsroleagent.agent.AgentCredentials}: the credentials; its {@code toString()} shows no
 *       secret.</li>
 * </ul>
 *
 * The SDK-specific classes ({@code io.emrfsroleagent.emrfs} for SDK v1, {@code io.emrfsroleagent.sdk2} for
 * SDK v2) turn an S3 request into a location, an {@link io.emrfsroleagent.agent.AgentCredentials} into the
 * SDK's credentials type and an {@link io.emrfsroleagent.agent.AgentException} into the SDK's exception
 * ({@code V1Errors}, {@code V2Errors}).
 */
package io.emrfsroleagent.agent;
