"""File helpers every stage shares: JSON and JSONL writers, and directories written atomically.

Under a multi-process launch (`accelerate launch --num_processes N`) every process runs the stage, but only the
main one (RANK 0) writes: on the others the writers do nothing and `atomic_dir` hands out a throwaway folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed launch (torchrun/accelerate set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def write_json(path: str | Path, obj: Any) -> None:
    if not is_main_process():
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line; keys starting with '_' (row bookkeeping such as _file, _row) are left out."""
    if not is_main_process():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, ensure_ascii=False) + "\n")


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Write a directory under a temporary name and move it into place only when the block succeeds, so an
    interrupted stage never leaves a partial model where a good one is expected. On a non-main process the block
    writes into a temporary folder that is deleted afterwards."""
    if not is_main_process():
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    final = Path(final)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def cache_dir() -> Path:
    """Where derived files that are pure functions of installed packages are kept ($SAFEALIGN_CACHE)."""
    return Path(os.environ.get("SAFEALIGN_CACHE", Path.home() / ".cache" / "safealign"))
