"""Masters in an S3-compatible bucket (``[images] source = "s3"``): located by HEAD, read by ranged GETs.

``S3Store`` is the ``ranged.Store`` over one bucket (boto3): the key is ``prefix + identifier`` (or
with an allowed extension, found by one LIST), its HEAD's **ETag is the fingerprint**, and every
ranged GET names it (``If-Match``). ``S3Source`` is ``ranged.StoreSource`` over it; the chunk cache
and the reads (``RangedObject``) are ``ranged.py``'s, shared with the HTTP(S) source.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StoreUnavailable
from .ranged import ChunkedStore, ObjectChanged, RangedObject, StoreSource

if TYPE_CHECKING:
    from ..config import S3Settings

log = logging.getLogger(__name__)
RETRY_AFTER = 5  # seconds, for a store that did not answer


@dataclass(frozen=True)
class S3Config:
    """What a process needs to reach the bucket; picklable, so a spawned render child can too."""

    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 2


def s3_config(s3: S3Settings) -> S3Config:
    """``[s3]`` as what a process needs: the server's source and ingest's writes reach the same bucket."""
    return S3Config(s3.bucket, s3.prefix, s3.endpoint_url, s3.region, s3.connect_timeout, s3.read_timeout, s3.retries)


class S3Store(ChunkedStore):
    """The ``ranged.Store`` of one bucket through boto3 (its credential chain), with the bytes and
    requests it cost (``ranged.ChunkedStore``). boto3 clients are thread-safe, one per process."""

    config: S3Config
    scheme = "s3"

    def name(self, key: str) -> str:
        return f"s3://{self.config.bucket}/{key}"

    def _connect(self) -> Any:
        return _client(self.config)

    def head(self, key: str) -> tuple[int, str, float] | None:
        """Size, ETag and modification time of ``key``; None if it does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as err:
            self._count("head", 0)
            if _status(err) == 403:  # AWS answers 403 for a missing key without s3:ListBucket, too
                log.warning("object store refused HEAD %s (403): missing, or not readable with these credentials", key)
                return None
            if _status(err) == 404 or _code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _unavailable(err) from None
        except BotoCoreError as err:
            raise _unavailable(err) from None
        self._count("head", 0)
        modified = answer.get("LastModified")
        mtime = modified.timestamp() if modified is not None else 0.0
        return int(answer["ContentLength"]), str(answer["ETag"]).strip('"'), mtime

    def get(self, key: str, etag: str, start: int, length: int) -> bytes:
        """Exactly bytes ``start`` .. ``start + length`` of the version ``etag`` of ``key``."""
        from botocore.exceptions import BotoCoreError, ClientError

        if length <= 0:
            return b""
        try:
            answer = self.client.get_object(
                Bucket=self.config.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}", IfMatch=f'"{etag}"'
            )
            data: bytes = answer["Body"].read()
        except ClientError as err:
            self._count("get", 0)
            if _status(err) in (412, 404) or _code(err) in ("PreconditionFailed", "NoSuchKey"):
                raise ObjectChanged(key) from None
            raise _unavailable(err) from None
        except BotoCoreError as err:
            raise _unavailable(err) from None
        self._count("get", len(data))
        if len(data) != length:
            raise ObjectChanged(key)
        return data

    def reachable(self) -> bool:
        """Does the bucket answer to these credentials? (one HEAD of the bucket, for readiness)"""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.config.bucket)
        except (BotoCoreError, ClientError) as err:
            log.warning("object store not reachable: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
            return False
        return True

    def keys(self, prefix: str, limit: int) -> Iterator[tuple[str, int, str, float]]:
        """Keys under ``prefix`` with their sizes, ETags and times, in the store's (lexicographic) order."""
        from botocore.exceptions import BotoCoreError, ClientError

        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.config.bucket, Prefix=prefix, PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 1000)}
        )
        try:
            for page in pages:
                self._count("list", 0)
                for item in page.get("Contents", ()):
                    modified = item.get("LastModified")
                    etag = str(item.get("ETag", "")).strip('"')
                    yield item["Key"], int(item.get("Size", 0)), etag, modified.timestamp() if modified else 0.0
        except (BotoCoreError, ClientError) as err:
            raise _unavailable(err) from None


class S3Source(StoreSource):
    """Identifier -> object in the bucket under ``[s3] prefix`` (``ranged.StoreSource``)."""

    def __init__(
        self,
        store: S3Store,
        extensions: tuple[str, ...],
        head_seconds: float = 1.0,
        miss_seconds: float = 5.0,
        cache_size: int = 32768,
    ) -> None:
        super().__init__(store, store.config.prefix, extensions, head_seconds, miss_seconds, cache_size)
        self.store: S3Store = store


def _client(config: S3Config) -> Any:
    import boto3
    from botocore.config import Config

    settings = Config(
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        retries={"max_attempts": config.retries + 1, "mode": "standard"},
        s3={"addressing_style": "path" if config.endpoint_url else "auto"},  # MinIO, Ceph, SeaweedFS: path
        max_pool_connections=32,
        request_checksum_calculation="when_required",  # ingest sends Content-MD5: no second pass for a CRC
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=config.endpoint_url or None, region_name=config.region or None, config=settings
    )


def _status(err: Any) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _unavailable(err: Exception) -> StoreUnavailable:
    log.error("object store error: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
    return StoreUnavailable("the image store did not answer; try again later", RETRY_AFTER)


__all__ = ["ObjectChanged", "RangedObject", "S3Config", "S3Source", "S3Store", "s3_config"]
