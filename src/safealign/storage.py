"""S3 access for the red-team drop: list, safely download, upload, and remember what was already ingested.

Settings come from the environment only: SAFEALIGN_S3_ENDPOINT (unset = AWS), SAFEALIGN_S3_BUCKET and
SAFEALIGN_DROP_PREFIX (default "redteam-drop/"). Credentials are never passed or logged here: boto3's own chain
finds them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role, ...).

Every S3 call goes through `retrying`, the one retry layer: network errors, 5xx and throttling are retried with
exponential backoff, then reported as StorageUnavailable (naming endpoint and bucket); anything else (access
denied, missing key) is raised at once, since retrying cannot fix it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from safealign.data import DropRejected

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PREFIX = "redteam-drop/"
MARKER_DIR = "_processed/"  # under the drop prefix: <prefix>_processed/<etag>.json
MAX_OBJECT_BYTES = 5 * 1024 * 1024
MAX_KEY_CHARS = 512
SAFE_KEY = re.compile(r"[A-Za-z0-9._\-/]+")
# Transient I/O: worth another attempt. ClientErrors are judged by status code and error code instead.
IO_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
    ResponseStreamingError,
    IncompleteReadError,
)
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestTimeout",
    }
)


class StorageConfigError(ValueError):
    """A required SAFEALIGN_S3_* setting is missing or malformed."""


class StorageUnavailable(RuntimeError):
    """S3 did not answer after every retry; names endpoint and bucket, never credentials."""

    def __init__(self, endpoint: str | None, bucket: str | None, attempts: int, cause: BaseException):
        self.endpoint, self.bucket, self.attempts = endpoint or "AWS (default endpoint)", bucket, attempts
        self.cause = f"{type(cause).__name__}: {_redact(str(cause))}"
        where = f"at {self.endpoint}, bucket '{bucket or '?'}'"
        super().__init__(f"S3 storage unavailable {where}, after {attempts} attempt(s): {self.cause}")


@dataclass(frozen=True)
class Settings:
    """Where the drop lives, from SAFEALIGN_S3_ENDPOINT / SAFEALIGN_S3_BUCKET / SAFEALIGN_DROP_PREFIX."""

    endpoint: str | None = None
    bucket: str | None = None
    prefix: str = DEFAULT_PREFIX
    region: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        prefix = os.environ.get("SAFEALIGN_DROP_PREFIX") or DEFAULT_PREFIX
        return cls(
            endpoint=os.environ.get("SAFEALIGN_S3_ENDPOINT") or None,
            bucket=os.environ.get("SAFEALIGN_S3_BUCKET") or None,
            prefix=normalize_prefix(prefix),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
        )

    def require_bucket(self, bucket: str | None = None) -> str:
        b = bucket or self.bucket
        if not b:
            raise StorageConfigError("no bucket: set SAFEALIGN_S3_BUCKET (or pass bucket=)")
        return b


@dataclass(frozen=True)
class Retry:
    """How hard to retry: `attempts` calls in all, sleeping base_delay * 2**n (capped) between them."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)


DEFAULT_RETRY = Retry()


@dataclass(frozen=True)
class DropObject:
    """One object in the drop as listed by S3 (etag without quotes)."""

    key: str
    size: int
    etag: str


def normalize_prefix(prefix: str) -> str:
    """A drop prefix as a folder: 'redteam-drop' -> 'redteam-drop/'; absolute or '..' prefixes are refused."""
    if prefix.startswith("/") or ".." in PurePosixPath(prefix).parts or "\\" in prefix:
        raise StorageConfigError(f"SAFEALIGN_DROP_PREFIX must be a relative folder, got {prefix!r}")
    return prefix if prefix.endswith("/") else prefix + "/"


def _redact(text: str) -> str:
    """Defence in depth: blank out secrets from the environment should an SDK message ever echo one."""
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def client(settings: Settings | None = None):
    """A boto3 S3 client for the configured endpoint; credentials from boto3's default chain."""
    s = settings or Settings.from_env()
    # botocore's own retries are off so `retrying` is the single, counted retry layer with a clear final error.
    cfg = {"retries": {"total_max_attempts": 1, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 30}
    if s.endpoint:
        # Local/S3-compatible servers: path-style URLs (no bucket DNS), checksums only where the API requires them.
        cfg |= {
            "s3": {"addressing_style": "path"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
    region = s.region or ("us-east-1" if s.endpoint else None)
    # A fresh Session per client: a long-lived one would cache the credentials it resolved first (rotation, tests).
    return boto3.session.Session().client("s3", endpoint_url=s.endpoint, region_name=region, config=Config(**cfg))


def is_retryable(exc: BaseException) -> bool:
    """I/O trouble worth another attempt: connection/timeouts, 5xx, throttling."""
    if isinstance(exc, IO_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or code in THROTTLING_CODES or code.startswith("5")
    return False


def retrying(
    fn: Callable[[], T],
    attempts: int = 4,
    base_delay: float = 1.0,
    *,
    bucket: str | None = None,
    endpoint: str | None = None,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call fn, retrying I/O errors with exponential backoff; after the last attempt raise StorageUnavailable."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    # Only for messages: read the raw variables, so a malformed prefix cannot break an unrelated call.
    endpoint = endpoint or os.environ.get("SAFEALIGN_S3_ENDPOINT") or None
    bucket = bucket or os.environ.get("SAFEALIGN_S3_BUCKET") or None
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not is_retryable(e):
                raise
            if attempt == attempts:
                raise StorageUnavailable(endpoint, bucket, attempts, e) from e
            delay = min(base_delay * 2 ** (attempt - 1), max_delay)
            log.warning(
                "S3 %s bucket %s: %s (attempt %d/%d), retrying in %.2fs",
                endpoint or "AWS",
                bucket,
                type(e).__name__,
                attempt,
                attempts,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")


def _call(fn: Callable[[], T], s: Settings, bucket: str, retry: Retry) -> T:
    return retrying(
        fn,
        retry.attempts,
        retry.base_delay,
        bucket=bucket,
        endpoint=s.endpoint,
        max_delay=retry.max_delay,
        sleep=retry.sleep,
    )


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def ensure_bucket(bucket: str | None = None, *, retry: Retry = DEFAULT_RETRY) -> str:
    """Create the bucket unless it exists; returns its name."""
    s = Settings.from_env()
    b = s.require_bucket(bucket)
    s3 = client(s)

    def go() -> None:
        try:
            s3.head_bucket(Bucket=b)
            return
        except ClientError as e:
            if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kw: dict[str, Any] = {}
        if not s.endpoint and s.region and s.region != "us-east-1":
            kw["CreateBucketConfiguration"] = {"LocationConstraint": s.region}
        try:
            s3.create_bucket(Bucket=b, **kw)
        except ClientError as e:
            if _code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    _call(go, s, b, retry)
    return b


def upload_file(path: str | Path, key: str, *, bucket: str | None = None, retry: Retry = DEFAULT_RETRY) -> DropObject:
    """Upload a local file to `key` (single PUT, re-sent whole on retry); returns the stored object."""
    s = Settings.from_env()
    b = s.require_bucket(bucket)
    s3 = client(s)
    path = Path(path)

    def go() -> DropObject:
        with open(path, "rb") as fh:  # reopened per attempt: a failed PUT may have consumed the stream
            r = s3.put_object(Bucket=b, Key=key, Body=fh)
        return DropObject(key, path.stat().st_size, r["ETag"].strip('"'))

    return _call(go, s, b, retry)


def list_drop(
    bucket: str | None = None, prefix: str | None = None, *, retry: Retry = DEFAULT_RETRY
) -> list[DropObject]:
    """Every object under the drop prefix (sorted by key), except folder markers and processed markers."""
    s = Settings.from_env()
    b, p = s.require_bucket(bucket), normalize_prefix(prefix or s.prefix)
    s3 = client(s)

    def go() -> list[DropObject]:  # the whole listing is retried: a half-read listing is not a listing
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=p):
            for o in page.get("Contents", []):
                if o["Key"].endswith("/") or o["Key"].startswith(p + MARKER_DIR):
                    continue
                out.append(DropObject(o["Key"], int(o["Size"]), o["ETag"].strip('"')))
        return sorted(out, key=lambda o: o.key)

    return _call(go, s, b, retry)


def check_key(key: str, dest_dir: str | Path) -> Path:
    """The local path for `key` under dest_dir, or DropRejected naming the rule it breaks (nothing touched)."""

    def reject(rule: str) -> DropRejected:
        return DropRejected(key, None, f"unsafe object key: {rule}")

    if not key:
        raise reject("empty key")
    if len(key) > MAX_KEY_CHARS:
        raise reject(f"longer than {MAX_KEY_CHARS} characters")
    if "\\" in key:
        raise reject("backslash in key")
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        raise reject("absolute path")
    parts = key.split("/")
    if ".." in parts:
        raise reject("path traversal ('..')")
    if any(part in ("", ".") for part in parts):
        raise reject("empty or '.' path segment")
    if not SAFE_KEY.fullmatch(key):
        raise reject("only letters, digits, '.', '_', '-' and '/' are allowed")
    if not key.endswith(".jsonl") or parts[-1] == ".jsonl":
        raise reject("only .jsonl files are accepted")
    root = Path(dest_dir).resolve()
    target = (root / key).resolve()  # follows symlinks already in dest_dir
    if not target.is_relative_to(root) or target == root:
        raise reject("resolves outside the destination folder")
    return target


def download(
    key: str,
    dest_dir: str | Path,
    *,
    bucket: str | None = None,
    max_bytes: int = MAX_OBJECT_BYTES,
    retry: Retry = DEFAULT_RETRY,
) -> Path:
    """Fetch one drop object to dest_dir/<key>; unsafe keys and objects over max_bytes are refused before any write."""
    target = check_key(key, dest_dir)  # before any network call or write
    s = Settings.from_env()
    b = s.require_bucket(bucket)
    s3 = client(s)

    def go() -> bytes:
        size = int(s3.head_object(Bucket=b, Key=key)["ContentLength"])
        if size > max_bytes:
            raise DropRejected(key, None, f"object too large: {size} bytes > limit {max_bytes}")
        body = s3.get_object(Bucket=b, Key=key)["Body"]
        try:
            data = body.read(max_bytes + 1)  # bounded: the object may have grown since the HEAD
        finally:
            body.close()
        if len(data) > max_bytes:
            raise DropRejected(key, None, f"object too large: more than limit {max_bytes} bytes")
        return data

    data = _call(go, s, b, retry)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a reader never sees half a file, and a symlink at target is replaced.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def marker_key(obj: DropObject, prefix: str | None = None) -> str:
    """Where the processed marker of an object lives: <prefix>_processed/<etag>.json (content, not name)."""
    p = normalize_prefix(prefix or Settings.from_env().prefix)
    return f"{p}{MARKER_DIR}{obj.etag}.json"


def mark_processed(
    obj: DropObject,
    info: dict[str, Any] | None = None,
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    retry: Retry = DEFAULT_RETRY,
) -> str:
    """Record that `obj` was ingested (marker keyed by etag, so a re-upload of the same bytes is skipped too)."""
    s = Settings.from_env()
    b = s.require_bucket(bucket)
    s3 = client(s)
    mk = marker_key(obj, prefix)
    body = {"key": obj.key, "etag": obj.etag, "size": obj.size, "processed_at": datetime.now(UTC).isoformat()}
    payload = json.dumps(body | (info or {}), ensure_ascii=False, sort_keys=True).encode()
    _call(lambda: s3.put_object(Bucket=b, Key=mk, Body=payload, ContentType="application/json"), s, b, retry)
    return mk


def processed_etags(bucket: str | None = None, prefix: str | None = None, *, retry: Retry = DEFAULT_RETRY) -> set[str]:
    """The etags of every drop object already ingested."""
    s = Settings.from_env()
    b = s.require_bucket(bucket)
    base = normalize_prefix(prefix or s.prefix) + MARKER_DIR
    s3 = client(s)

    def go() -> set[str]:
        keys = (
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=base)
            for o in page.get("Contents", [])
        )
        return {k[len(base) : -len(".json")] for k in keys if k.endswith(".json")}

    return _call(go, s, b, retry)


def read_marker(
    obj: DropObject, *, bucket: str | None = None, prefix: str | None = None, retry: Retry = DEFAULT_RETRY
) -> dict[str, Any] | None:
    """The marker written by mark_processed, or None when `obj` was not ingested yet."""
    s = Settings.from_env()
    b = s.require_bucket(bucket)
    s3 = client(s)

    def go() -> dict[str, Any] | None:
        try:
            return json.loads(s3.get_object(Bucket=b, Key=marker_key(obj, prefix))["Body"].read())
        except ClientError as e:
            if _code(e) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    return _call(go, s, b, retry)


def pending_drop(
    bucket: str | None = None, prefix: str | None = None, *, retry: Retry = DEFAULT_RETRY
) -> list[DropObject]:
    """Drop objects not yet marked processed."""
    done = processed_etags(bucket, prefix, retry=retry)
    return [o for o in list_drop(bucket, prefix, retry=retry) if o.etag not in done]
