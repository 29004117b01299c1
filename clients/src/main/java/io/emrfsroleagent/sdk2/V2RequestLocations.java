package io.emrfsroleagent.sdk2;

import io.emrfsroleagent.agent.RequestLocation;
import java.io.UnsupportedEncodingException;
import java.net.URLDecoder;
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
 * and UploadPartCopy; the bucket root for requests without a key (HeadBucket, listing the root, bucket
 * operations). The access is the operation's ({@code Get*}, {@code List*}, {@code Head*}: read; the rest
 * write). Null for S3 requests that name no bucket (ListBuckets) and for other services.
 */
public final class V2RequestLocations {
  private V2RequestLocations() {}

  public static RequestLocation of(SdkRequest request) {
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
      String[] source = source(r.sourceBucket(), r.sourceKey(), legacyCopySource(r));
      return RequestLocation.copy("CopyObject", source[0], source[1], r.destinationBucket(), r.destinationKey());
    }
    if (request instanceof UploadPartCopyRequest) {
      UploadPartCopyRequest r = (UploadPartCopyRequest) request;
      String[] source = source(r.sourceBucket(), r.sourceKey(), legacyCopySource(r));
      return RequestLocation.copy("UploadPartCopy", source[0], source[1], r.destinationBucket(),
          r.destinationKey());
    }
    String bucket = request.getValueForField("Bucket", String.class).orElse(null);
    String key = request.getValueForField("Key", String.class).orElse(null);
    return RequestLocation.of(operation(request), bucket, key);
  }

  /**
   * The copy's source bucket and key. The S3 client's own interceptor rewrites {@code sourceBucket} and
   * {@code sourceKey} into the URL-encoded {@code copySource} ("bucket/key[?versionId=..]") before ours runs.
   */
  static String[] source(String bucket, String key, String copySource) {
    if (bucket != null && key != null) {
      return new String[] {bucket, key};
    }
    if (copySource == null) {
      return new String[] {null, null};
    }
    String s = copySource.startsWith("/") ? copySource.substring(1) : copySource;
    int version = s.indexOf("?versionId=");
    if (version >= 0) {
      s = s.substring(0, version);
    }
    try {
      s = URLDecoder.decode(s.replace("+", "%2B"), "UTF-8");
    } catch (UnsupportedEncodingException e) {
      throw new AssertionError(e);
    }
    int slash = s.indexOf('/');
    return slash < 0 ? new String[] {s, null} : new String[] {s.substring(0, slash), s.substring(slash + 1)};
  }

  @SuppressWarnings("deprecation") // what the S3 client turns sourceBucket and sourceKey into
  private static String legacyCopySource(CopyObjectRequest r) {
    return r.copySource();
  }

  @SuppressWarnings("deprecation")
  private static String legacyCopySource(UploadPartCopyRequest r) {
    return r.copySource();
  }

  /** GetObjectRequest -> GetObject. */
  private static String operation(SdkRequest request) {
    String name = request.getClass().getSimpleName();
    return name.endsWith("Request") ? name.substring(0, name.length() - "Request".length()) : name;
  }
}
