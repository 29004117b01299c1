package io.emrfsroleagent.emrfs;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

import com.amazonaws.AmazonWebServiceRequest;
import com.amazonaws.services.s3.model.CopyObjectRequest;
import com.amazonaws.services.s3.model.CopyPartRequest;
import com.amazonaws.services.s3.model.DeleteObjectsRequest;
import com.amazonaws.services.s3.model.GetObjectMetadataRequest;
import com.amazonaws.services.s3.model.GetObjectRequest;
import com.amazonaws.services.s3.model.HeadBucketRequest;
import com.amazonaws.services.s3.model.InitiateMultipartUploadRequest;
import com.amazonaws.services.s3.model.ListObjectsV2Request;
import com.amazonaws.services.s3.model.PutObjectRequest;
import com.amazonaws.services.s3.model.UploadPartRequest;
import java.io.ByteArrayInputStream;
import java.util.Objects;

/** Where SDK v1 S3 requests are located. Prints "N passed, N failed"; exits non-zero on any failure. */
public final class V1LocationsSelfTest {
  public static void main(String[] args) {
    expect("GetObject b/k", "GetObject s3://b/teamA/k", new GetObjectRequest("b", "teamA/k"));
    expect("HeadObject", "GetObjectMetadata s3://b/teamA/k", new GetObjectMetadataRequest("b", "teamA/k"));
    expect("PutObject", "PutObject s3://b/teamB/o",
        new PutObjectRequest("b", "teamB/o", new ByteArrayInputStream(new byte[0]), null));
    expect("InitiateMultipartUpload", "InitiateMultipartUpload s3://b/teamB/big",
        new InitiateMultipartUploadRequest("b", "teamB/big"));
    expect("UploadPart", "UploadPart s3://b/teamB/big",
        new UploadPartRequest().withBucketName("b").withKey("teamB/big"));
    expect("ListObjectsV2 with a prefix", "ListObjectsV2 s3://b/teamA/dir/",
        new ListObjectsV2Request().withBucketName("b").withPrefix("teamA/dir/"));
    expect("ListObjectsV2 of the root: bucket level", null, new ListObjectsV2Request().withBucketName("b"));
    expect("HeadBucket: bucket level", null, new HeadBucketRequest("b"));
    expect("DeleteObjects: common prefix", "DeleteObjects s3://b/teamA/d",
        new DeleteObjectsRequest("b").withKeys("teamA/dir/1", "teamA/dir/2", "teamA/d"));
    expect("CopyObject", "CopyObject s3://b/teamA/x -> s3://b/teamB/y",
        new CopyObjectRequest("b", "teamA/x", "b", "teamB/y"));
    expect("UploadPartCopy", "UploadPartCopy s3://b/teamA/x -> s3://b/teamA/y",
        new CopyPartRequest().withSourceBucketName("b").withSourceKey("teamA/x").withDestinationBucketName("b")
            .withDestinationKey("teamA/y"));
    finish();
  }

  static void expect(String name, String want, AmazonWebServiceRequest request) {
    check(name, () -> expectEquals(want, Objects.toString(V1RequestLocations.of(request), null), "location"));
  }
}
