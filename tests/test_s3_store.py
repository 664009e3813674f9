"""The SeaweedFS fixture is a real S3 API: signed requests, ranged GETs, ETags, 404s; and it leaves nothing behind."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.s3_store import S3Store, s3_store  # noqa: F401


def test_the_store_puts_heads_and_gets_ranges(s3_store: S3Store) -> None:  # noqa: F811
    client = s3_store.client()
    body = bytes(range(256)) * 4096  # 1 MiB
    put = client.put_object(Bucket=s3_store.bucket, Key="fixture/probe.bin", Body=body)
    head = client.head_object(Bucket=s3_store.bucket, Key="fixture/probe.bin")
    assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
    part = client.get_object(Bucket=s3_store.bucket, Key="fixture/probe.bin", Range="bytes=1000-1099")
    assert part["ContentRange"] == f"bytes 1000-1099/{len(body)}"
    assert part["Body"].read() == body[1000:1100]
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=s3_store.bucket, Key="fixture/none.bin")
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    client.delete_object(Bucket=s3_store.bucket, Key="fixture/probe.bin")


def test_wrong_credentials_are_refused(s3_store: S3Store) -> None:  # noqa: F811
    import boto3

    stranger = boto3.client(
        "s3",
        endpoint_url=s3_store.endpoint_url,
        aws_access_key_id="nobody",
        aws_secret_access_key="wrong-secret",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError):
        stranger.list_objects_v2(Bucket=s3_store.bucket)
