package io.emrfsroleagent.emrfs;

import com.amazonaws.AmazonWebServiceRequest;
import com.amazonaws.services.s3.model.CopyObjectRequest;
import com.amazonaws.services.s3.model.CopyPartRequest;
import com.amazonaws.services.s3.model.DeleteObjectsRequest;
import com.amazonaws.services.s3.model.ListMultipartUploadsRequest;
import com.amazonaws.services.s3.model.ListObjectsRequest;
import com.amazonaws.services.s3.model.ListObjectsV2Request;
import com.amazonaws.services.s3.model.ListVersionsRequest;
import io.emrfsroleagent.agent.RequestLocation;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;

/**
 * Where an SDK v1 S3 request is located: bucket and key for object requests (GetObject, PutObject, HeadObject,
 * multipart upload parts, ...); bucket and prefix for listings; the keys' common prefix for DeleteObjects;
 * source and destination for CopyObject and UploadPartCopy; the bucket root for requests without a key
 * (HeadBucket, GetBucketAcl, listing the root, ...). The access is the operation's ({@code Get*},
 * {@code List*}, {@code Head*}: read; the rest write). Null only for requests that name no bucket.
 */
public final class V1RequestLocations {

  private V1RequestLocations() {}

  /**
   * Per request class: its {@code getBucketName()} and {@code getKey()} (null when it has no key), or null when
   * it names no bucket.
   */
  private static final ClassValue<Method[]> ACCESSORS = new ClassValue<Method[]>() {
    @Override
    protected Method[] computeValue(Class<?> type) {
      Method bucket = accessor(type, "getBucketName");
      return bucket == null ? null : new Method[] {bucket, accessor(type, "getKey")};
    }
  };

  private static Method accessor(Class<?> type, String name) {
    try {
      Method m = type.getMethod(name);
      return m.getReturnType() == String.class ? m : null;
    } catch (NoSuchMethodException | SecurityException e) {
      return null;
    }
  }

  public static RequestLocation of(AmazonWebServiceRequest request) {
    if (request instanceof ListObjectsV2Request) {
      ListObjectsV2Request r = (ListObjectsV2Request) request;
      return RequestLocation.of("ListObjectsV2", r.getBucketName(), r.getPrefix());
    }
    if (request instanceof ListObjectsRequest) {
      ListObjectsRequest r = (ListObjectsRequest) request;
      return RequestLocation.of("ListObjects", r.getBucketName(), r.getPrefix());
    }
    if (request instanceof ListMultipartUploadsRequest) {
      ListMultipartUploadsRequest r = (ListMultipartUploadsRequest) request;
      return RequestLocation.of("ListMultipartUploads", r.getBucketName(), r.getPrefix());
    }
    if (request instanceof ListVersionsRequest) {
      ListVersionsRequest r = (ListVersionsRequest) request;
      return RequestLocation.of("ListObjectVersions", r.getBucketName(), r.getPrefix());
    }
    if (request instanceof DeleteObjectsRequest) {
      DeleteObjectsRequest r = (DeleteObjectsRequest) request;
      List<String> keys = new ArrayList<>(r.getKeys().size());
      for (DeleteObjectsRequest.KeyVersion k : r.getKeys()) {
        keys.add(k.getKey());
      }
      return RequestLocation.bulk("DeleteObjects", r.getBucketName(), keys);
    }
    if (request instanceof CopyObjectRequest) {
      CopyObjectRequest r = (CopyObjectRequest) request;
      return RequestLocation.copy("CopyObject", r.getSourceBucketName(), r.getSourceKey(),
          r.getDestinationBucketName(), r.getDestinationKey());
    }
    if (request instanceof CopyPartRequest) {
      CopyPartRequest r = (CopyPartRequest) request;
      return RequestLocation.copy("UploadPartCopy", r.getSourceBucketName(), r.getSourceKey(),
          r.getDestinationBucketName(), r.getDestinationKey());
    }
    Method[] accessors = ACCESSORS.get(request.getClass());
    if (accessors == null) {
      return null;
    }
    try {
      return RequestLocation.of(operation(request), (String) accessors[0].invoke(request),
          accessors[1] == null ? null : (String) accessors[1].invoke(request));
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException("cannot read bucket and key of " + request.getClass().getName(), e);
    }
  }

  /** GetObjectRequest -> GetObject. */
  private static String operation(AmazonWebServiceRequest request) {
    String name = request.getClass().getSimpleName();
    return name.endsWith("Request") ? name.substring(0, name.length() - "Request".length()) : name;
  }
}
