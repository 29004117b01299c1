package io.emrfsroleagent.sdk2;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

import java.util.Objects;
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
 * Where SDK v2 S3 requests are located, with which access; keys taken literally. Prints "N passed, N failed";
 * exits non-zero on any failure.
 */
public final class V2LocationsSelfTest {
  @SuppressWarnings("deprecation") // copySource: what the S3 client's own interceptor leaves for ours
  public static void main(String[] args) {
    expect("GetObject", "GetObject s3://b/teamA/k (read)",
        GetObjectRequest.builder().bucket("b").key("teamA/k").build());
    expect("HeadObject", "HeadObject s3://b/teamA/k (read)",
        HeadObjectRequest.builder().bucket("b").key("teamA/k").build());
    expect("GetObjectTagging", "GetObjectTagging s3://b/teamA/k (read)",
        GetObjectTaggingRequest.builder().bucket("b").key("teamA/k").build());
    expect("PutObjectTagging", "PutObjectTagging s3://b/teamA/k (write)",
        PutObjectTaggingRequest.builder().bucket("b").key("teamA/k").build());
    expect("PutObject", "PutObject s3://b/teamB/o (write)",
        PutObjectRequest.builder().bucket("b").key("teamB/o").build());
    expect("DeleteObject", "DeleteObject s3://b/teamB/o (write)",
        DeleteObjectRequest.builder().bucket("b").key("teamB/o").build());
    expect("UploadPart", "UploadPart s3://b/teamB/big (write)",
        UploadPartRequest.builder().bucket("b").key("teamB/big").uploadId("u").partNumber(1).build());
    expect("ListParts", "ListParts s3://b/teamB/big (read)",
        ListPartsRequest.builder().bucket("b").key("teamB/big").uploadId("u").build());
    expect("ListObjectsV2 with a prefix", "ListObjectsV2 s3://b/teamA/dir/ (read)",
        ListObjectsV2Request.builder().bucket("b").prefix("teamA/dir/").build());
    expect("ListObjectsV2 of the root: the bucket root", "ListObjectsV2 s3://b/ (read)",
        ListObjectsV2Request.builder().bucket("b").build());
    expect("HeadBucket: the bucket root", "HeadBucket s3://b/ (read)", HeadBucketRequest.builder().bucket("b").build());
    expect("GetBucketLocation: the bucket root", "GetBucketLocation s3://b/ (read)",
        GetBucketLocationRequest.builder().bucket("b").build());
    expect("CreateBucket: the bucket root, write", "CreateBucket s3://b/ (write)",
        CreateBucketRequest.builder().bucket("b").build());
    expect("ListBuckets: no bucket, nothing", null, ListBucketsRequest.builder().build());
    expect("DeleteObjects: common prefix", "DeleteObjects s3://b/teamA/dir/ (write)",
        DeleteObjectsRequest.builder().bucket("b").delete(Delete.builder().objects(
            ObjectIdentifier.builder().key("teamA/dir/1").build(),
            ObjectIdentifier.builder().key("teamA/dir/2").build()).build()).build());
    expect("CopyObject with source bucket and key", "CopyObject s3://b/teamA/x (read) -> s3://b/teamB/y (write)",
        CopyObjectRequest.builder().sourceBucket("b").sourceKey("teamA/x").destinationBucket("b")
            .destinationKey("teamB/y").build());
    expect("CopyObject with copySource, URL-encoded, with a version",
        "CopyObject s3://b/teamA/a b+c (read) -> s3://b/teamB/y (write)",
        CopyObjectRequest.builder().copySource("b/teamA/a%20b%2Bc?versionId=v1").destinationBucket("b")
            .destinationKey("teamB/y").build());
    expect("CopyObject with copySource: decoded once, %2F in the key stays",
        "CopyObject s3://lake/x%2Fy/secret/f (read) -> s3://lake/pub/caf\u00e9 (write)",
        CopyObjectRequest.builder().copySource("lake/x%252Fy/secret/f").destinationBucket("lake")
            .destinationKey("pub/caf\u00e9").build());
    expect("UploadPartCopy", "UploadPartCopy s3://b/teamA/x (read) -> s3://b/teamA/y (write)",
        UploadPartCopyRequest.builder().sourceBucket("b").sourceKey("teamA/x").destinationBucket("b")
            .destinationKey("teamA/y").uploadId("u").partNumber(1).build());
    // Keys are bytes: what the request names, never decoded.
    expect("a key with %2F stays %2F", "GetObject s3://lake/x%2Fy/secret/f (read)",
        GetObjectRequest.builder().bucket("lake").key("x%2Fy/secret/f").build());
    expect("a bare %, +, spaces, non-ASCII", "PutObject s3://lake/a b+c/100%off caf\u00e9.csv (write)",
        PutObjectRequest.builder().bucket("lake").key("a b+c/100%off caf\u00e9.csv").build());
    expect("Hive-escaped partition", "ListObjectsV2 s3://lake/t/dt=2026-01-01 00%3A00/ (read)",
        ListObjectsV2Request.builder().bucket("lake").prefix("t/dt=2026-01-01 00%3A00/").build());
    expect("another service: nothing", null, GetCallerIdentityRequest.builder().build());
    finish();
  }

  static void expect(String name, String want, SdkRequest request) {
    check(name, () -> expectEquals(want, Objects.toString(V2RequestLocations.of(request), null), "location"));
  }
}
