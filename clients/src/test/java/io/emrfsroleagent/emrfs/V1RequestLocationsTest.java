package io.emrfsroleagent.emrfs;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.amazonaws.AmazonWebServiceRequest;
import com.amazonaws.services.s3.model.CopyObjectRequest;
import com.amazonaws.services.s3.model.CopyPartRequest;
import com.amazonaws.services.s3.model.CreateBucketRequest;
import com.amazonaws.services.s3.model.DeleteObjectRequest;
import com.amazonaws.services.s3.model.DeleteObjectsRequest;
import com.amazonaws.services.s3.model.GetBucketAclRequest;
import com.amazonaws.services.s3.model.GetObjectMetadataRequest;
import com.amazonaws.services.s3.model.GetObjectRequest;
import com.amazonaws.services.s3.model.GetObjectTaggingRequest;
import com.amazonaws.services.s3.model.HeadBucketRequest;
import com.amazonaws.services.s3.model.InitiateMultipartUploadRequest;
import com.amazonaws.services.s3.model.ListBucketsRequest;
import com.amazonaws.services.s3.model.ListObjectsRequest;
import com.amazonaws.services.s3.model.ListObjectsV2Request;
import com.amazonaws.services.s3.model.ListPartsRequest;
import com.amazonaws.services.s3.model.ObjectTagging;
import com.amazonaws.services.s3.model.PutObjectRequest;
import com.amazonaws.services.s3.model.SetObjectTaggingRequest;
import com.amazonaws.services.s3.model.UploadPartRequest;
import java.io.ByteArrayInputStream;
import java.util.Collections;
import java.util.Objects;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Where SDK v1 S3 requests are located, with which access; keys taken literally.
 */
final class V1RequestLocationsTest {
  static Stream<Arguments> requests() {
    return Stream.of(
        Arguments.of("GetObject b/k", "GetObject s3://b/teamA/k (read)", new GetObjectRequest("b", "teamA/k")),
        Arguments.of("HeadObject", "GetObjectMetadata s3://b/teamA/k (read)",
            new GetObjectMetadataRequest("b", "teamA/k")),
        Arguments.of("GetObjectTagging", "GetObjectTagging s3://b/teamA/k (read)",
            new GetObjectTaggingRequest("b", "teamA/k")),
        Arguments.of("SetObjectTagging", "SetObjectTagging s3://b/teamA/k (write)",
            new SetObjectTaggingRequest("b", "teamA/k", new ObjectTagging(Collections.emptyList()))),
        Arguments.of("PutObject", "PutObject s3://b/teamB/o (write)",
            new PutObjectRequest("b", "teamB/o", new ByteArrayInputStream(new byte[0]), null)),
        Arguments.of("DeleteObject", "DeleteObject s3://b/teamB/o (write)", new DeleteObjectRequest("b", "teamB/o")),
        Arguments.of("InitiateMultipartUpload", "InitiateMultipartUpload s3://b/teamB/big (write)",
            new InitiateMultipartUploadRequest("b", "teamB/big")),
        Arguments.of("UploadPart", "UploadPart s3://b/teamB/big (write)",
            new UploadPartRequest().withBucketName("b").withKey("teamB/big")),
        Arguments.of("ListParts", "ListParts s3://b/teamB/big (read)", new ListPartsRequest("b", "teamB/big", "u")),
        Arguments.of("ListObjectsV2 with a prefix", "ListObjectsV2 s3://b/teamA/dir/ (read)",
            new ListObjectsV2Request().withBucketName("b").withPrefix("teamA/dir/")),
        Arguments.of("ListObjectsV2 of the root: the bucket root", "ListObjectsV2 s3://b/ (read)",
            new ListObjectsV2Request().withBucketName("b")),
        Arguments.of("ListObjects of the root", "ListObjects s3://b/ (read)",
            new ListObjectsRequest().withBucketName("b")),
        Arguments.of("HeadBucket: the bucket root", "HeadBucket s3://b/ (read)", new HeadBucketRequest("b")),
        Arguments.of("GetBucketAcl (S3A 3.3's bucket probe): the bucket root", "GetBucketAcl s3://b/ (read)",
            new GetBucketAclRequest("b")),
        Arguments.of("CreateBucket: the bucket root, write", "CreateBucket s3://b/ (write)",
            new CreateBucketRequest("b")),
        Arguments.of("ListBuckets: no bucket, nothing", null, new ListBucketsRequest()),
        Arguments.of("DeleteObjects: common prefix", "DeleteObjects s3://b/teamA/d (write)",
            new DeleteObjectsRequest("b").withKeys("teamA/dir/1", "teamA/dir/2", "teamA/d")),
        Arguments.of("CopyObject", "CopyObject s3://b/teamA/x (read) -> s3://b/teamB/y (write)",
            new CopyObjectRequest("b", "teamA/x", "b", "teamB/y")),
        Arguments.of("UploadPartCopy", "UploadPartCopy s3://b/teamA/x (read) -> s3://b/teamA/y (write)",
            new CopyPartRequest().withSourceBucketName("b").withSourceKey("teamA/x").withDestinationBucketName("b")
                .withDestinationKey("teamA/y")),
        // Keys are bytes: what the request names, never decoded.
        Arguments.of("a key with %2F stays %2F", "GetObject s3://lake/x%2Fy/secret/f (read)",
            new GetObjectRequest("lake", "x%2Fy/secret/f")),
        Arguments.of("a bare %, +, spaces, non-ASCII", "PutObject s3://lake/a b+c/100%off café.csv (write)",
            new PutObjectRequest("lake", "a b+c/100%off café.csv", new ByteArrayInputStream(new byte[0]), null)),
        Arguments.of("Hive-escaped partition", "ListObjectsV2 s3://lake/t/dt=2026-01-01 00%3A00/ (read)",
            new ListObjectsV2Request().withBucketName("lake").withPrefix("t/dt=2026-01-01 00%3A00/")));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("requests")
  void located(String name, String want, AmazonWebServiceRequest request) {
    assertEquals(want, Objects.toString(V1RequestLocations.of(request), null), "location and access");
  }
}
