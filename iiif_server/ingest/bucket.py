"""Masters in the S3 bucket (``[images] source = "s3"``): ingest's writes, ``verify``'s reads, fixity records.

Atomic as on disk, by the store's own checks:

1. the master is converted into a local staging file (the system's temporary folder) and hashed:
   sha256 (the fixity record, and the object's ``sha256`` metadata) and MD5 (per part if multipart);
2. it is uploaded to a hidden temporary key ``.ingest/{identifier}.{random}.partial`` with
   Content-MD5 (the store refuses a body corrupted on the way); its HEAD must report the size and
   the ETag expected from the local MD5 (``md5-of-part-md5s-N`` when multipart);
3. it is published by a server-side copy to the real key, conditional both ways: the temporary
   object is the one checked (``CopySourceIfMatch``) and the real key is as ingest found it
   (``If-None-Match: *`` for a new master, ``If-Match`` its ETag for a replacement), so two
   ingests never overwrite each other; the real key's HEAD must report the size and the sha256;
4. the temporary key is deleted whatever happened.

A replaced master is first copied server-side to ``.versions/`` and checked. Fixity records are one
JSON object per master (``.fixity/masters/{identifier}.json``) and per event
(``.fixity/events/{identifier}/{time}-{action}.json``): one object per write, so workers on any
number of machines never contend for a file. Hidden keys are never served (``ranged.StoreSource``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..image.s3 import S3Config, S3Store, _code, _status, _unavailable
from .fixity import FIXITY_DIR, Entry, event, version_name
from .masters import ALTERED, MISSING, RESIZED, NotUnderRoot, Published, PublishError, Taken, visible_folder

INGEST_DIR = ".ingest"
MASTERS = f"{FIXITY_DIR}/masters/"
EVENTS = f"{FIXITY_DIR}/events/"
PART_BYTES = 64 << 20  # a master larger than this is uploaded in parts of this size (one in memory)
COPY_LIMIT = 5 << 30  # S3's limit for one server-side copy
CHUNK = 1 << 20
ALL = 1 << 40  # "no limit" for a listing


@dataclass(frozen=True, slots=True)
class ToBucket:
    """Masters under ``[s3] prefix`` in the bucket; picklable for a process pool or an RQ job."""

    config: S3Config
    part_bytes: int = PART_BYTES

    @property
    def name(self) -> str:
        return f"s3://{self.config.bucket}/{self.config.prefix}"

    def folder(self, path: str) -> str:
        """A key prefix under the bucket's prefix: relative, no ``..``, no hidden folder (never served)."""
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if path.startswith("/") or ".." in parts:
            raise NotUnderRoot(f"{path!r} is outside the bucket {self.name}: give a folder relative to it")
        return visible_folder(parts, path, f"the bucket {self.name}")

    def recorded(self) -> bool:
        return any(True for _ in S3Store(self.config).keys(self.config.prefix + MASTERS, 1))

    def open(self) -> MasterBucket:
        """One per process (a boto3 client costs ~0.1 s to make), never one made before a fork."""
        return _opened(self, os.getpid())


@functools.lru_cache(maxsize=8)
def _opened(destination: ToBucket, pid: int) -> MasterBucket:
    return MasterBucket(destination.config, destination.part_bytes)


class MasterBucket:
    """``masters.Masters`` over one bucket (boto3, its credential chain)."""

    def __init__(self, config: S3Config, part_bytes: int = PART_BYTES) -> None:
        self.config = config
        self.part_bytes = part_bytes
        self.store = S3Store(config)
        self.catalogue = BucketCatalogue(self.store)

    @property
    def client(self) -> Any:
        return self.store.client

    def _key(self, identifier: str) -> str:
        return self.config.prefix + identifier

    def size(self, identifier: str) -> int | None:
        found = self.store.head(self._key(identifier))
        return found[0] if found is not None else None

    @contextmanager
    def staging(self, identifier: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="iiif-ingest-") as folder:
            yield Path(folder) / "master.tif"

    def publish(self, identifier: str, staged: Path, replacing: bool) -> Published:
        size = staged.stat().st_size
        if size > COPY_LIMIT:
            raise PublishError("over 5 GB: too large for one server-side copy into place")
        sha256, md5s = digests(staged, self.part_bytes)
        temp = f"{self.config.prefix}{INGEST_DIR}/{identifier}.{uuid.uuid4().hex}.partial"
        real = self._key(identifier)
        try:
            etag = self._upload(temp, staged, sha256, md5s)
            self._expect(temp, size, etag=multipart_etag(md5s))
            kept, current = self._keep_previous(identifier) if replacing else (None, None)
            condition = {"IfMatch": f'"{current}"'} if current else {"IfNoneMatch": "*"}
            self._copy(temp, real, etag, condition)
            self._expect(real, size, sha256=sha256)
            return Published(sha256, size, kept)
        finally:
            self._delete(temp)

    def _upload(self, key: str, staged: Path, sha256: str, md5s: list[bytes]) -> str:
        """One PUT (or a multipart upload), every body with its Content-MD5; the ETag the store answers."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, metadata = self.config.bucket, {"sha256": sha256}
        try:
            if len(md5s) == 1:
                with staged.open("rb") as body:
                    answer = self.client.put_object(
                        Bucket=bucket, Key=key, Body=body, ContentMD5=_b64(md5s[0]), Metadata=metadata,
                        ContentType="image/tiff",
                    )  # fmt: skip
                return str(answer["ETag"]).strip('"')
            upload = self.client.create_multipart_upload(
                Bucket=bucket, Key=key, Metadata=metadata, ContentType="image/tiff"
            )["UploadId"]
            try:
                parts = []
                with staged.open("rb") as handle:
                    for number, md5 in enumerate(md5s, 1):
                        answer = self.client.upload_part(
                            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                            Body=handle.read(self.part_bytes), ContentMD5=_b64(md5),
                        )  # fmt: skip
                        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                done = self.client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
                return str(done["ETag"]).strip('"')
            except BaseException:
                with suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
                raise
        except (BotoCoreError, ClientError) as err:
            raise PublishError(f"the store refused the upload: {_first_line(err)}") from None

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = self.client.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as err:
            if _status(err) == 404 or _code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise PublishError(f"the store did not answer a HEAD: {_first_line(err)}") from None
        except BotoCoreError as err:
            raise PublishError(f"the store did not answer a HEAD: {_first_line(err)}") from None
        return answer

    def _expect(self, key: str, size: int, etag: str = "", sha256: str = "") -> None:
        """The store must report what was sent, else nothing is published (or the publication fails)."""
        answer = self._head(key) or {}
        length = int(answer.get("ContentLength", -1))
        reported = str(answer.get("ETag", "")).strip('"')
        metadata = answer.get("Metadata", {})
        if length != size or (etag and reported != etag) or (sha256 and metadata.get("sha256") != sha256):
            expected = f"ETag {etag}" if etag else f"sha256 {sha256}"
            raise PublishError(
                f"the store reports {length} bytes, ETag {reported or '?'} for {key}; sent {size} bytes, {expected}"
            )

    def _copy(self, source: str, target: str, etag: str, condition: dict[str, str]) -> None:
        """Server-side copy of exactly the version ``etag`` of ``source``, if ``target`` is as expected."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.copy_object(
                Bucket=self.config.bucket, Key=target, CopySource={"Bucket": self.config.bucket, "Key": source},
                CopySourceIfMatch=f'"{etag}"', MetadataDirective="COPY", **condition,
            )  # fmt: skip
        except ClientError as err:
            if _status(err) == 412 or _code(err) == "PreconditionFailed":
                raise Taken(target) from None
            raise PublishError(f"the store refused to copy {source} to {target}: {_first_line(err)}") from None
        except BotoCoreError as err:
            raise PublishError(f"the store refused to copy {source} to {target}: {_first_line(err)}") from None

    def _keep_previous(self, identifier: str) -> tuple[str | None, str | None]:
        """The current master copied to ``.versions/`` and checked: (where, under the prefix; its ETag).

        (None, None) if it is gone since it was found: the new one is then a first master.
        """
        current = self._head(self._key(identifier))
        if current is None:
            return None, None
        etag = str(current["ETag"]).strip('"')
        kept = version_name(identifier)
        self._copy(self._key(identifier), self.config.prefix + kept, etag, {"IfNoneMatch": "*"})
        copy = self._head(self.config.prefix + kept) or {}
        same_etag = "-" in etag or str(copy.get("ETag", "")).strip('"') == etag  # a multipart copy may get a new one
        if copy.get("ContentLength") != current["ContentLength"] or not same_etag:
            raise PublishError(f"the copy of the current master in {kept} is not the same; nothing replaced")
        return kept, etag

    def _delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        with suppress(BotoCoreError, ClientError):
            self.client.delete_object(Bucket=self.config.bucket, Key=key)

    def check(self, entry: Entry) -> str | None:
        """HEAD, then the whole object streamed through sha256 in chunks (constant memory)."""
        key = self._key(entry.identifier)
        found = self.store.head(key)
        if found is None:
            return MISSING
        if found[0] != entry.master_size:
            return RESIZED
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.config.bucket, Key=key, IfMatch=f'"{found[1]}"')["Body"]
            for block in body.iter_chunks(CHUNK):
                digest.update(block)
        except ClientError as err:
            if _status(err) in (404, 412) or _code(err) in ("NoSuchKey", "PreconditionFailed"):
                return self.check(entry)  # replaced or deleted since the HEAD: check what is there now
            raise _unavailable(err) from None
        except BotoCoreError as err:
            raise _unavailable(err) from None
        return ALTERED if digest.hexdigest() != entry.master_sha256 else None


class BucketCatalogue:
    """``fixity.Catalogue`` as JSON objects under ``{prefix}.fixity/``: one per master, one per event."""

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.prefix = store.config.prefix

    def _get(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.store.client.get_object(Bucket=self.store.config.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if _status(err) == 404 or _code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _unavailable(err) from None
        except BotoCoreError as err:
            raise _unavailable(err) from None
        found: dict[str, Any] = json.loads(body)
        return found

    def _put(self, key: str, data: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        body = json.dumps(data, ensure_ascii=False, indent=1).encode()
        try:
            self.store.client.put_object(
                Bucket=self.store.config.bucket, Key=key, Body=body, ContentType="application/json"
            )
        except (BotoCoreError, ClientError) as err:
            raise _unavailable(err) from None

    def _listed(self, prefix: str) -> Iterator[dict[str, Any]]:
        for key, *_ in self.store.keys(prefix, ALL):
            if key.endswith(".json") and (data := self._get(key)) is not None:
                yield data

    def get(self, identifier: str) -> Entry | None:
        data = self._get(f"{self.prefix}{MASTERS}{identifier}.json")
        return Entry(**data) if data else None

    def entries(self, prefix: str = "") -> list[Entry]:
        """The master ``prefix`` and those under the folder ``prefix``: one LIST, one GET each."""
        folder = prefix.rstrip("/")
        found = {entry.identifier: entry for entry in [self.get(folder)] if folder and entry}
        for data in self._listed(f"{self.prefix}{MASTERS}{folder + '/' if folder else ''}"):
            found[data["identifier"]] = Entry(**data)
        return [found[identifier] for identifier in sorted(found)]

    def record(self, entry: Entry, previous: Entry | None = None, previous_version: str | None = None) -> None:
        """The event first, then the master's record (what ``get`` answers): a crash between them
        leaves history, never a claim."""
        happened = event(entry, previous, previous_version)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self._put(f"{self.prefix}{EVENTS}{entry.identifier}/{stamp}-{happened['action']}.json", happened)
        self._put(f"{self.prefix}{MASTERS}{entry.identifier}.json", asdict(entry))

    def events(self, identifier: str) -> list[tuple[str, str, str | None]]:
        """Oldest first: the keys' times sort as the store lists them."""
        return [
            (d["action"], d["at"], d["previous_version"]) for d in self._listed(f"{self.prefix}{EVENTS}{identifier}/")
        ]


def digests(path: Path, part_bytes: int) -> tuple[str, list[bytes]]:
    """sha256 of the file and the MD5 of each ``part_bytes`` part (one part if it fits), in one read."""
    whole = hashlib.sha256()
    md5s: list[bytes] = []
    with path.open("rb") as handle:
        while True:
            part, filled = hashlib.md5(usedforsecurity=False), 0
            while filled < part_bytes and (block := handle.read(min(CHUNK, part_bytes - filled))):
                whole.update(block)
                part.update(block)
                filled += len(block)
            if filled == 0 and md5s:
                break
            md5s.append(part.digest())
            if filled < part_bytes:
                break
    return whole.hexdigest(), md5s


def multipart_etag(md5s: list[bytes]) -> str:
    """The ETag S3 gives an upload: the MD5 of the body, or of the parts' MD5s with ``-N``."""
    if len(md5s) == 1:
        return md5s[0].hex()
    return f"{hashlib.md5(b''.join(md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
