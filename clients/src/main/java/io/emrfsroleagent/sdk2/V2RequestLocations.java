package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.RequestLocation;
import java.util.ArrayList;
import java.util.List;
import software.amazon.awssdk.core.SdkRequest;
import software.amazon.awssdk.services.s3.model.CopyObjectRequest;
import software.amazon.awssdk.services.s3.model.DeleteObjectsRequest;
import software.amazon.awssdk.services.s3.model.ListMultipartUploadsRequest;
import software.amazon.awssdk.services.s3.model.ListObjectVersionsRequest;
import software.amazon.awssdk.services.s3.model.ListObjectsRequest;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Request;
import software.amazon.awssdk.services.s3.model.ObjectIdentifier;
import software.amazon.awssdk.services.s3.model.S3Request;
import software.amazon.awssdk.services.s3.model.UploadPartCopyRequest;

/**
 * Where an SDK v2 S3 request is located: its {@code Bucket} and {@code Key} fields for object requests; bucket
 * and prefix for listings; the keys' common prefix for DeleteObjects; source and destination for CopyObject
 * and UploadPartCopy. Null for requests without a key and for other services.
 */
final class V2RequestLocations {
  private V2RequestLocations() {}

  static RequestLocation of(SdkRequest request) {
    if (!(request instanceof S3Request)) {
      return null;
    }
    if (request instanceof ListObjectsV2Request) {
      ListObjectsV2Request r = (ListObjectsV2Request) request;
      return RequestLocation.of("ListObjectsV2", r.bucket(), r.prefix());
    }
    if (request instanceof ListObjectsRequest) {
      ListObjectsRequest r = (ListObjectsRequest) request;
      return RequestLocation.of("ListObjects", r.bucket(), r.prefix());
    }
    if (request instanceof ListMultipartUploadsRequest) {
      ListMultipartUploadsRequest r = (ListMultipartUploadsRequest) request;
      return RequestLocation.of("ListMultipartUploads", r.bucket(), r.prefix());
    }
    if (request instanceof ListObjectVersionsRequest) {
      ListObjectVersionsRequest r = (ListObjectVersionsRequest) request;
      return RequestLocation.of("ListObjectVersions", r.bucket(), r.prefix());
    }
    if (request instanceof DeleteObjectsRequest) {
      DeleteObjectsRequest r = (DeleteObjectsRequest) request;
      List<String> keys = new ArrayList<>();
      if (r.delete() != null) {
        for (ObjectIdentifier o : r.delete().objects()) {
          keys.add(o.key());
        }
      }
      return RequestLocation.bulk("DeleteObjects", r.bucket(), keys);
    }
    if (request instanceof CopyObjectRequest) {
      CopyObjectRequest r = (CopyObjectRequest) request;
      return RequestLocation.copy("CopyObject", r.sourceBucket(), r.sourceKey(), r.destinationBucket(),
          r.destinationKey());
    }
    if (request instanceof UploadPartCopyRequest) {
      UploadPartCopyRequest r = (UploadPartCopyRequest) request;
      return RequestLocation.copy("UploadPartCopy", r.sourceBucket(), r.sourceKey(), r.destinationBucket(),
          r.destinationKey());
    }
    String bucket = request.getValueForField("Bucket", String.class).orElse(null);
    String key = request.getValueForField("Key", String.class).orElse(null);
    return RequestLocation.of(operation(request), bucket, key);
  }

  /** GetObjectRequest -> GetObject. */
  private static String operation(SdkRequest request) {
    String name = request.getClass().getSimpleName();
    return name.endsWith("Request") ? name.substring(0, name.length() - "Request".length()) : name;
  }
}
