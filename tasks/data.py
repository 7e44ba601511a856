"""Nightly data tasks: ingest the red-team drop from S3 and version the new data with DVC.

Every S3 call retries with backoff inside safealign.storage (I/O only); validation failures never retry.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from prefect import get_run_logger, task

from safealign import ingest, storage


@task(name="ingest-drop")
def ingest_drop(repo: Path, languages: list[str], limits: dict[str, int]) -> dict:
    """Download new drop files, validate them against the benchmark, merge them into data/benchmark."""
    logger = get_run_logger()
    pending = storage.pending_drop()
    if not pending:
        logger.info("no new files in the red-team drop")
        return {"files": [], "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = {obj.key: storage.download(obj.key, Path(tmp)) for obj in pending}
        with ingest.stage_drop(files, repo / "data" / "benchmark", languages, limits) as staged:
            counts = ingest.apply_staged(staged, repo / "data" / "benchmark")
    for obj in pending:
        storage.mark_processed(obj, {"rows": counts})
    logger.info("ingested %d drop file(s): %s", len(pending), counts)
    return {"files": [o.key for o in pending], "rows": counts}


@task(name="version-data", retries=3, retry_delay_seconds=[5, 20, 60])
def version_data(repo: Path) -> str:
    """`dvc add data` and `dvc push` of the new data version; returns the md5 that data.dvc now records."""
    for args in (["add", "data"], ["push", "data.dvc"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, check=True, capture_output=True, text=True)
    from safealign.tracking import data_version

    return data_version(str(repo / "data.dvc"))


@task(name="pipeline-status")
def pipeline_changed(repo: Path) -> bool:
    """True if any stage of dvc.yaml is out of date (new data, changed params or code, a failed last night)."""
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() not in ("{}", "")
