"""At most one pipeline run per checkout: runs share the workspace (params.yaml, data/, models/, dvc.lock)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


class RunInProgress(RuntimeError):
    """Another hybrid-train run holds the lock."""


@contextlib.contextmanager
def run_lock(repo: str | Path, what: str = "hybrid-train") -> Iterator[Path]:
    """Hold an exclusive lock on <repo>/.dvc/tmp/<what>.lock for the block; fail at once, naming the holder, if
    another process has it. The OS releases the lock when the holder dies, so a killed run never blocks the next."""
    path = Path(repo) / ".dvc" / "tmp" / f"{what}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 (held open for the whole block: the lock lives as long as the handle)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise RunInProgress(
            f"another {what} run is in progress in {Path(repo).resolve()} ({holder}); "
            "it must finish before a new one starts"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
    )
    fh.flush()
    try:
        yield path
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
