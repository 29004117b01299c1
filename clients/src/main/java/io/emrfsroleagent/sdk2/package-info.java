/**
 * The clients for the AWS SDK for Java v2 (Hadoop S3A 3.4.x, EMR 7.10 and later):
 * {@link io.emrfsroleagent.sdk2.RoleAgentAwsCredentialsProvider} for the bucket level
 * ({@code fs.s3a.aws.credentials.provider}) and {@link io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor}
 * per S3 request ({@code fs.s3a.audit.execution.interceptors}).
 */
package io.emrfsroleagent.sdk2;
