package io.emrfsroleagent.sdk2;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

import java.util.Objects;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.services.s3.model.CopyObjectRequest;
import software.amazon.awssdk.services.s3.model.Delete;
import software.amazon.awssdk.services.s3.model.DeleteObjectsRequest;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.HeadBucketRequest;
import software.amazon.awssdk.services.s3.model.HeadObjectRequest;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Request;
import software.amazon.awssdk.services.s3.model.ObjectIdentifier;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;
import software.amazon.awssdk.services.s3.model.UploadPartCopyRequest;
import software.amazon.awssdk.services.s3.model.UploadPartRequest;
import software.amazon.awssdk.services.sts.model.GetCallerIdentityRequest;

/** Where SDK v2 S3 requests are located. Prints "N passed, N failed"; exits non-zero on any failure. */
public final class V2LocationsSelfTest {
  @SuppressWarnings("deprecation") // copySource: what the S3 client's own interceptor leaves for ours
  public static void main(String[] args) {
    expect("GetObject", "GetObject s3://b/teamA/k", GetObjectRequest.builder().bucket("b").key("teamA/k").build());
    expect("HeadObject", "HeadObject s3://b/teamA/k", HeadObjectRequest.builder().bucket("b").key("teamA/k").build());
    expect("PutObject", "PutObject s3://b/teamB/o", PutObjectRequest.builder().bucket("b").key("teamB/o").build());
    expect("UploadPart", "UploadPart s3://b/teamB/big",
        UploadPartRequest.builder().bucket("b").key("teamB/big").uploadId("u").partNumber(1).build());
    expect("ListObjectsV2 with a prefix", "ListObjectsV2 s3://b/teamA/dir/",
        ListObjectsV2Request.builder().bucket("b").prefix("teamA/dir/").build());
    expect("ListObjectsV2 of the root: bucket level", null, ListObjectsV2Request.builder().bucket("b").build());
    expect("HeadBucket: bucket level", null, HeadBucketRequest.builder().bucket("b").build());
    expect("DeleteObjects: common prefix", "DeleteObjects s3://b/teamA/dir/",
        DeleteObjectsRequest.builder().bucket("b").delete(Delete.builder().objects(
            ObjectIdentifier.builder().key("teamA/dir/1").build(),
            ObjectIdentifier.builder().key("teamA/dir/2").build()).build()).build());
    expect("CopyObject with source bucket and key", "CopyObject s3://b/teamA/x -> s3://b/teamB/y",
        CopyObjectRequest.builder().sourceBucket("b").sourceKey("teamA/x").destinationBucket("b")
            .destinationKey("teamB/y").build());
    expect("CopyObject with copySource, URL-encoded, with a version",
        "CopyObject s3://b/teamA/a b+c -> s3://b/teamB/y",
        CopyObjectRequest.builder().copySource("b/teamA/a%20b%2Bc?versionId=v1").destinationBucket("b")
            .destinationKey("teamB/y").build());
    expect("UploadPartCopy", "UploadPartCopy s3://b/teamA/x -> s3://b/teamA/y",
        UploadPartCopyRequest.builder().sourceBucket("b").sourceKey("teamA/x").destinationBucket("b")
            .destinationKey("teamA/y").uploadId("u").partNumber(1).build());
    expect("another service: nothing", null, GetCallerIdentityRequest.builder().build());
    finish();
  }

  static void expect(String name, String want, SdkRequest request) {
    check(name, () -> expectEquals(want, Objects.toString(V2RequestLocations.of(request), null), "location"));
  }
}
