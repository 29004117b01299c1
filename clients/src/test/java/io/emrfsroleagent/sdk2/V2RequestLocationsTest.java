package io.emrfsroleagent.sdk2;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Objects;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.services.s3.model.CopyObjectRequest;
import software.amazon.awssdk.services.s3.model.CreateBucketRequest;
import software.amazon.awssdk.services.s3.model.Delete;
import software.amazon.awssdk.services.s3.model.DeleteObjectRequest;
import software.amazon.awssdk.services.s3.model.DeleteObjectsRequest;
import software.amazon.awssdk.services.s3.model.GetBucketLocationRequest;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.GetObjectTaggingRequest;
import software.amazon.awssdk.services.s3.model.HeadBucketRequest;
import software.amazon.awssdk.services.s3.model.HeadObjectRequest;
import software.amazon.awssdk.services.s3.model.ListBucketsRequest;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Request;
import software.amazon.awssdk.services.s3.model.ListPartsRequest;
import software.amazon.awssdk.services.s3.model.ObjectIdentifier;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;
import software.amazon.awssdk.services.s3.model.PutObjectTaggingRequest;
import software.amazon.awssdk.services.s3.model.UploadPartCopyRequest;
import software.amazon.awssdk.services.s3.model.UploadPartRequest;
import software.amazon.awssdk.services.sts.model.GetCallerIdentityRequest;

/**
 * Where SDK v2 S3 requests are located, with which access; keys taken literally.
 */
@Tag("sdk-v2")
final class V2RequestLocationsTest {
  @SuppressWarnings("deprecation") // copySource: what the S3 client's own interceptor leaves for ours
  static Stream<Arguments> requests() {
    return Stream.of(
        Arguments.of("GetObject", "GetObject s3://b/teamA/k (read)",
            GetObjectRequest.builder().bucket("b").key("teamA/k").build()),
        Arguments.of("HeadObject", "HeadObject s3://b/teamA/k (read)",
            HeadObjectRequest.builder().bucket("b").key("teamA/k").build()),
        Arguments.of("GetObjectTagging", "GetObjectTagging s3://b/teamA/k (read)",
            GetObjectTaggingRequest.builder().bucket("b").key("teamA/k").build()),
        Arguments.of("PutObjectTagging", "PutObjectTagging s3://b/teamA/k (write)",
            PutObjectTaggingRequest.builder().bucket("b").key("teamA/k").build()),
        Arguments.of("PutObject", "PutObject s3://b/teamB/o (write)",
            PutObjectRequest.builder().bucket("b").key("teamB/o").build()),
        Arguments.of("DeleteObject", "DeleteObject s3://b/teamB/o (write)",
            DeleteObjectRequest.builder().bucket("b").key("teamB/o").build()),
        Arguments.of("UploadPart", "UploadPart s3://b/teamB/big (write)",
            UploadPartRequest.builder().bucket("b").key("teamB/big").uploadId("u").partNumber(1).build()),
        Arguments.of("ListParts", "ListParts s3://b/teamB/big (read)",
            ListPartsRequest.builder().bucket("b").key("teamB/big").uploadId("u").build()),
        Arguments.of("ListObjectsV2 with a prefix", "ListObjectsV2 s3://b/teamA/dir/ (read)",
            ListObjectsV2Request.builder().bucket("b").prefix("teamA/dir/").build()),
        Arguments.of("ListObjectsV2 of the root: the bucket root", "ListObjectsV2 s3://b/ (read)",
            ListObjectsV2Request.builder().bucket("b").build()),
        Arguments.of("HeadBucket: the bucket root", "HeadBucket s3://b/ (read)",
            HeadBucketRequest.builder().bucket("b").build()),
        Arguments.of("GetBucketLocation: the bucket root", "GetBucketLocation s3://b/ (read)",
            GetBucketLocationRequest.builder().bucket("b").build()),
        Arguments.of("CreateBucket: the bucket root, write", "CreateBucket s3://b/ (write)",
            CreateBucketRequest.builder().bucket("b").build()),
        Arguments.of("ListBuckets: no bucket, nothing", null, ListBucketsRequest.builder().build()),
        Arguments.of("DeleteObjects: common prefix", "DeleteObjects s3://b/teamA/dir/ (write)",
            DeleteObjectsRequest.builder().bucket("b").delete(Delete.builder().objects(
                ObjectIdentifier.builder().key("teamA/dir/1").build(),
                ObjectIdentifier.builder().key("teamA/dir/2").build()).build()).build()),
        Arguments.of("CopyObject with source bucket and key",
            "CopyObject s3://b/teamA/x (read) -> s3://b/teamB/y (write)",
            CopyObjectRequest.builder().sourceBucket("b").sourceKey("teamA/x").destinationBucket("b")
                .destinationKey("teamB/y").build()),
        Arguments.of("CopyObject with copySource, URL-encoded, with a version",
            "CopyObject s3://b/teamA/a b+c (read) -> s3://b/teamB/y (write)",
            CopyObjectRequest.builder().copySource("b/teamA/a%20b%2Bc?versionId=v1").destinationBucket("b")
                .destinationKey("teamB/y").build()),
        Arguments.of("CopyObject with copySource: decoded once, %2F in the key stays",
            "CopyObject s3://lake/x%2Fy/secret/f (read) -> s3://lake/pub/caf\u00e9 (write)",
            CopyObjectRequest.builder().copySource("lake/x%252Fy/secret/f").destinationBucket("lake")
                .destinationKey("pub/caf\u00e9").build()),
        Arguments.of("UploadPartCopy", "UploadPartCopy s3://b/teamA/x (read) -> s3://b/teamA/y (write)",
            UploadPartCopyRequest.builder().sourceBucket("b").sourceKey("teamA/x").destinationBucket("b")
                .destinationKey("teamA/y").uploadId("u").partNumber(1).build()),
        // Keys are bytes: what the request names, never decoded.
        Arguments.of("a key with %2F stays %2F", "GetObject s3://lake/x%2Fy/secret/f (read)",
            GetObjectRequest.builder().bucket("lake").key("x%2Fy/secret/f").build()),
        Arguments.of("a bare %, +, spaces, non-ASCII", "PutObject s3://lake/a b+c/100%off caf\u00e9.csv (write)",
            PutObjectRequest.builder().bucket("lake").key("a b+c/100%off caf\u00e9.csv").build()),
        Arguments.of("Hive-escaped partition", "ListObjectsV2 s3://lake/t/dt=2026-01-01 00%3A00/ (read)",
            ListObjectsV2Request.builder().bucket("lake").prefix("t/dt=2026-01-01 00%3A00/").build()),
        Arguments.of("another service: nothing", null, GetCallerIdentityRequest.builder().build()));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("requests")
  void located(String name, String want, SdkRequest request) {
    assertEquals(want, Objects.toString(V2RequestLocations.of(request), null), "location and access");
  }
}
