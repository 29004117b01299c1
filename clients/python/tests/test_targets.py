"""Which locations an operation reaches: the key exactly as the caller gave it, never decoded."""

import pytest

from emrfs_role_agent.targets import Target, access_of, copy_source, target_of


@pytest.mark.parametrize("operation,access", [
    ("GetObject", "read"), ("HeadObject", "read"), ("ListObjectsV2", "read"), ("GetObjectTagging", "read"),
    ("HeadBucket", "read"), ("ListMultipartUploads", "read"),
    ("PutObject", "write"), ("DeleteObject", "write"), ("CopyObject", "write"), ("CreateMultipartUpload", "write"),
    ("UploadPart", "write"), ("CompleteMultipartUpload", "write"), ("DeleteObjects", "write"),
    ("RestoreObject", "write"), ("SelectObjectContent", "write"),
])
def test_access(operation, access):
    assert access_of(operation) == access


KEYS = ["plain/key.csv", "100%off.csv", "x%2Fy/secret/f", "a%25b", "a+b c", "café/ü.parquet",
        "dt=2026-01-01 00%3A00/part-0", "sp ace/", "?versionId=not-a-version"]


@pytest.mark.parametrize("key", KEYS)
def test_object_keys_are_literal(key):
    assert target_of("GetObject", {"Bucket": "lake", "Key": key}) == Target("GetObject", "read", f"s3://lake/{key}")
    assert target_of("PutObject", {"Bucket": "lake", "Key": key, "Body": b""}).location == f"s3://lake/{key}"


def test_listings_and_keyless_requests():
    assert target_of("ListObjectsV2", {"Bucket": "lake", "Prefix": "teamA/in put/", "Delimiter": "/"}) == \
        Target("ListObjectsV2", "read", "s3://lake/teamA/in put/")
    assert target_of("ListObjectsV2", {"Bucket": "lake"}).location == "s3://lake/"
    assert target_of("HeadBucket", {"Bucket": "lake"}) == Target("HeadBucket", "read", "s3://lake/")
    assert target_of("PutBucketTagging", {"Bucket": "lake", "Tagging": {}}).access == "write"
    assert target_of("ListBuckets", {}) == Target("ListBuckets", "read", "")


@pytest.mark.parametrize("source,expected", [
    ("src/a%2Fb/c.csv", "s3://src/a%2Fb/c.csv"),
    ("/src/café 1", "s3://src/café 1"),
    ("src/k?versionId=3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "s3://src/k"),
    ({"Bucket": "src", "Key": "100%off.csv", "VersionId": "v1"}, "s3://src/100%off.csv"),
    ("arn:aws:s3:us-east-1:111111111111:accesspoint/ap/object/a/b",
     "s3://arn:aws:s3:us-east-1:111111111111:accesspoint/ap/a/b"),
    (None, None), ({"Bucket": "src"}, None),
])
def test_copy_source(source, expected):
    assert copy_source(source) == expected


def test_copy_reads_its_source_and_writes_its_destination():
    t = target_of("CopyObject", {"Bucket": "dst", "Key": "to/k", "CopySource": "src/from/k"})
    assert (t.access, t.location, t.source) == ("write", "s3://dst/to/k", "s3://src/from/k")
    t = target_of("UploadPartCopy", {"Bucket": "dst", "Key": "to/k", "CopySource": {"Bucket": "s", "Key": "f"},
                                     "PartNumber": 1, "UploadId": "u"})
    assert (t.location, t.source) == ("s3://dst/to/k", "s3://s/f")


def test_bulk_delete_is_located_at_the_common_prefix():
    keys = ["teamA/x/1", "teamA/x/2", "teamA/y"]
    t = target_of("DeleteObjects", {"Bucket": "lake", "Delete": {"Objects": [{"Key": k} for k in keys]}})
    assert (t.access, t.location) == ("write", "s3://lake/teamA/")
    assert t.members == tuple(f"s3://lake/{k}" for k in keys)
    assert target_of("DeleteObjects", {"Bucket": "lake", "Delete": {"Objects": [{"Key": "a"}, {"Key": "b"}]}}
                     ).location == "s3://lake/"
