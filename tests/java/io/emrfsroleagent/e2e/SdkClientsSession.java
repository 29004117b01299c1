package io.emrfsroleagent.e2e;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;

/**
 * Plain AWS SDK clients in one JVM, built as job code builds them, each with its own static credentials: an SDK
 * v1 {@code AmazonS3} (AmazonS3ClientBuilder), an SDK v2 {@code S3Client}, and STS clients of both SDKs. With
 * emrfs-role-agent-hooks.jar on the class path, the S3 requests are signed with the agent's credentials for
 * their keys; the STS requests keep the clients' own.
 *
 * <pre>
 * SdkClientsSession S3_ENDPOINT STS_ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY OP...
 *   v1-put:BUCKET/KEY   v2-put:BUCKET/KEY    write the text "written by v1|v2 to KEY"
 *   v1-get:BUCKET/KEY   v2-get:BUCKET/KEY    read, print the text
 *   v1-head:BUCKET/KEY  v2-head:BUCKET/KEY   HEAD, print the length
 *   v1-list:BUCKET/P    v2-list:BUCKET/P     list keys under prefix P, print them
 *   v1-delete:BUCKET/KEY v2-delete:BUCKET/KEY
 *   v1-sts              v2-sts               GetCallerIdentity, print the ARN
 * </pre>
 *
 * Prints {@code OK OP [result]} or {@code FAIL OP: ExceptionClass status=.. code=.. message} per operation, then
 * {@code DONE}. S3 is reached path-style over plain HTTP at S3_ENDPOINT, STS at STS_ENDPOINT, region us-east-1.
 */
public final class SdkClientsSession {

  public static void main(String[] args) {
    String s3Endpoint = args[0];
    String stsEndpoint = args[1];
    String keyId = args[2];
    String secret = args[3];
    V1 v1 = null;
    V2 v2 = null;
    for (int i = 4; i < args.length; i++) {
      String op = args[i];
      try {
        String result;
        if (op.startsWith("v1-")) { // built at first use: a runtime may have one SDK only
          v1 = v1 != null ? v1 : new V1(s3Endpoint, stsEndpoint, keyId, secret);
          result = v1.run(op.substring(3));
        } else {
          v2 = v2 != null ? v2 : new V2(s3Endpoint, stsEndpoint, keyId, secret);
          result = v2.run(op.substring(3));
        }
        System.out.println("OK " + op + (result.isEmpty() ? "" : " " + result));
      } catch (Exception e) {
        System.out.println("FAIL " + op + ": " + describe(e));
        e.printStackTrace(System.err);
      }
      System.out.flush();
    }
    System.out.println("DONE");
  }

  /** "ExceptionClass status=403 code=AccessDenied message" for service errors, else class and message. */
  static String describe(Exception e) {
    String status = "";
    if (e instanceof com.amazonaws.AmazonServiceException) {
      com.amazonaws.AmazonServiceException s = (com.amazonaws.AmazonServiceException) e;
      status = " status=" + s.getStatusCode() + " code=" + s.getErrorCode();
    } else if (e instanceof software.amazon.awssdk.awscore.exception.AwsServiceException) {
      software.amazon.awssdk.awscore.exception.AwsServiceException s =
          (software.amazon.awssdk.awscore.exception.AwsServiceException) e;
      status = " status=" + s.statusCode() + " code=" + (s.awsErrorDetails() == null ? null
          : s.awsErrorDetails().errorCode());
    }
    return e.getClass().getName() + status + " " + String.valueOf(e.getMessage()).replace('\n', ' ');
  }

  /** BUCKET/KEY -> {bucket, key}. */
  static String[] split(String arg) {
    int slash = arg.indexOf('/');
    return new String[] {arg.substring(0, slash), arg.substring(slash + 1)};
  }

  static String text(InputStream in) throws java.io.IOException {
    try (InputStream stream = in) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      byte[] buffer = new byte[4096];
      int n;
      while ((n = stream.read(buffer)) != -1) {
        out.write(buffer, 0, n);
      }
      return new String(out.toByteArray(), StandardCharsets.UTF_8);
    }
  }

  /** AWS SDK for Java v1. */
  static final class V1 {
    final com.amazonaws.services.s3.AmazonS3 s3;
    final com.amazonaws.services.securitytoken.AWSSecurityTokenService sts;

    V1(String s3Endpoint, String stsEndpoint, String keyId, String secret) {
      com.amazonaws.auth.AWSStaticCredentialsProvider own = new com.amazonaws.auth.AWSStaticCredentialsProvider(
          new com.amazonaws.auth.BasicAWSCredentials(keyId, secret));
      s3 = com.amazonaws.services.s3.AmazonS3ClientBuilder.standard()
          .withEndpointConfiguration(new com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration(
              s3Endpoint, "us-east-1"))
          .withPathStyleAccessEnabled(true)
          .withClientConfiguration(new com.amazonaws.ClientConfiguration().withMaxErrorRetry(0))
          .withCredentials(own)
          .build();
      sts = com.amazonaws.services.securitytoken.AWSSecurityTokenServiceClientBuilder.standard()
          .withEndpointConfiguration(new com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration(
              stsEndpoint, "us-east-1"))
          .withCredentials(own)
          .build();
    }

    String run(String op) throws Exception {
      int colon = op.indexOf(':');
      String verb = colon < 0 ? op : op.substring(0, colon);
      String[] at = colon < 0 ? null : split(op.substring(colon + 1));
      switch (verb) {
        case "put":
          s3.putObject(at[0], at[1], "written by v1 to " + at[1]);
          return "";
        case "get":
          return text(s3.getObject(at[0], at[1]).getObjectContent());
        case "head":
          return String.valueOf(s3.getObjectMetadata(at[0], at[1]).getContentLength());
        case "list": {
          StringBuilder keys = new StringBuilder();
          for (com.amazonaws.services.s3.model.S3ObjectSummary o : s3.listObjectsV2(at[0], at[1])
              .getObjectSummaries()) {
            keys.append(keys.length() == 0 ? "" : " ").append(o.getKey());
          }
          return keys.toString();
        }
        case "delete":
          s3.deleteObject(at[0], at[1]);
          return "";
        case "sts":
          return sts.getCallerIdentity(new com.amazonaws.services.securitytoken.model.GetCallerIdentityRequest())
              .getArn();
        default:
          throw new IllegalArgumentException("unknown operation v1-" + op);
      }
    }
  }

  /** AWS SDK for Java v2. */
  static final class V2 {
    final software.amazon.awssdk.services.s3.S3Client s3;
    final software.amazon.awssdk.services.sts.StsClient sts;

    V2(String s3Endpoint, String stsEndpoint, String keyId, String secret) {
      software.amazon.awssdk.auth.credentials.StaticCredentialsProvider own =
          software.amazon.awssdk.auth.credentials.StaticCredentialsProvider.create(
              software.amazon.awssdk.auth.credentials.AwsBasicCredentials.create(keyId, secret));
      s3 = software.amazon.awssdk.services.s3.S3Client.builder()
          .endpointOverride(URI.create(s3Endpoint))
          .region(software.amazon.awssdk.regions.Region.US_EAST_1)
          .forcePathStyle(true)
          .httpClientBuilder(software.amazon.awssdk.http.apache.ApacheHttpClient.builder())
          .credentialsProvider(own)
          .build();
      sts = software.amazon.awssdk.services.sts.StsClient.builder()
          .endpointOverride(URI.create(stsEndpoint))
          .region(software.amazon.awssdk.regions.Region.US_EAST_1)
          .httpClientBuilder(software.amazon.awssdk.http.apache.ApacheHttpClient.builder())
          .credentialsProvider(own)
          .build();
    }

    String run(String op) throws Exception {
      int colon = op.indexOf(':');
      String verb = colon < 0 ? op : op.substring(0, colon);
      String[] at = colon < 0 ? null : split(op.substring(colon + 1));
      switch (verb) {
        case "put":
          s3.putObject(b -> b.bucket(at[0]).key(at[1]),
              software.amazon.awssdk.core.sync.RequestBody.fromString("written by v2 to " + at[1]));
          return "";
        case "get":
          return text(s3.getObject(b -> b.bucket(at[0]).key(at[1])));
        case "head":
          return String.valueOf(s3.headObject(b -> b.bucket(at[0]).key(at[1])).contentLength());
        case "list": {
          StringBuilder keys = new StringBuilder();
          for (software.amazon.awssdk.services.s3.model.S3Object o : s3.listObjectsV2(
              b -> b.bucket(at[0]).prefix(at[1])).contents()) {
            keys.append(keys.length() == 0 ? "" : " ").append(o.key());
          }
          return keys.toString();
        }
        case "delete":
          s3.deleteObject(b -> b.bucket(at[0]).key(at[1]));
          return "";
        case "sts":
          return sts.getCallerIdentity().arn();
        default:
          throw new IllegalArgumentException("unknown operation v2-" + op);
      }
    }
  }
}
