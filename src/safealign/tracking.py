"""MLflow bookkeeping: one parent run per pipeline execution, a nested run per stage and arm.

Who owns the parent run:
- `python -m safealign.pipeline` and the Prefect flow create it and pass its id to every stage through
  SAFEALIGN_PARENT_RUN_ID, then mark it FINISHED or FAILED;
- a bare `dvc repro` has no such owner: its stages share a parent keyed by the pipeline's identity (git commit,
  params.yaml, data.dvc), created by the first stage that runs and finished by the last (the cost stage).
Default storage is `sqlite:///mlflow.db` (no server needed to record); MLFLOW_TRACKING_URI overrides it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec

from safealign.io import is_main_process

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_ENV = "SAFEALIGN_PARENT_RUN_ID"
KEY_TAG = "safealign.pipeline_key"
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
P = ParamSpec("P")


def main_process_only(fn: Callable[P, None]) -> Callable[P, None]:
    """The decorated call does nothing outside the main process of a distributed launch: one MLflow run, one
    compute record per stage."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> None:
        if is_main_process():
            fn(*args, **kwargs)

    return call


def _mlflow():
    import logging

    import mlflow

    os.environ.setdefault("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_version(dvc_file: str = "data.dvc") -> str:
    """The md5 that data.dvc records for data/ (the DVC data version), or 'untracked'."""
    path = Path(dvc_file)
    if not path.exists():
        return "untracked"
    import yaml

    outs = (yaml.safe_load(path.read_text()) or {}).get("outs", [{}])
    return str(outs[0].get("md5", "unknown"))


def pipeline_tags() -> dict[str, str]:
    tags = {"git_commit": git_commit(), "data_version": data_version()}
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect_flow_run_id"] = os.environ["PREFECT__FLOW_RUN_ID"]
    return tags


def pipeline_key() -> str:
    params = Path("params.yaml").read_bytes() if Path("params.yaml").exists() else b""
    blob = git_commit().encode() + params + data_version().encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def experiment_id(name: str) -> str:
    """The experiment's id, created on first use. With SAFEALIGN_MLFLOW_ARTIFACTS (e.g. s3://bucket/mlflow) its
    artifacts go there through boto3 (MLFLOW_S3_ENDPOINT_URL for a non-AWS endpoint); otherwise next to the
    tracking store. A tracking server started with --artifacts-destination decides for itself."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp and exp.tags.get(KIND_TAG) == KIND:
        return exp.experiment_id
    if exp is None:
        root = os.environ.get("SAFEALIGN_MLFLOW_ARTIFACTS")
        exp_id = mlflow.create_experiment(name, artifact_location=f"{root.rstrip('/')}/{name}" if root else None)
    else:
        exp_id = exp.experiment_id
    # MLflow 3's UI opens an experiment without a kind in its GenAI view; ours is model training
    mlflow.MlflowClient().set_experiment_tag(exp_id, KIND_TAG, KIND)
    return exp_id


def start_parent(experiment: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Create a RUNNING parent run and return its id (the caller ends it with end_parent)."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id(experiment), run_name=name, tags=pipeline_tags() | (tags or {}))
    return run.info.run_id


def end_parent(run_id: str, status: str = "FINISHED", tags: dict[str, str] | None = None) -> None:
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    for k, v in (tags or {}).items():
        client.set_tag(run_id, k, v)
    client.set_terminated(run_id, status=status)


def resolve_parent(experiment: str) -> tuple[str, bool]:
    """(parent run id, owned_by_caller): the env's parent if set, else find-or-create the keyed one."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV], False
    mlflow = _mlflow()
    key = pipeline_key()
    found = mlflow.search_runs(
        experiment_ids=[experiment_id(experiment)],
        filter_string=f"tags.`{KEY_TAG}` = '{key}' and attributes.status = 'RUNNING'",
        output_format="list",
        max_results=1,
    )
    if found:
        return found[0].info.run_id, True
    return start_parent(experiment, f"dvc-repro-{key[:8]}", {KEY_TAG: key, "launched_by": "dvc repro"}), True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_runs(experiment: str, stage: str, arm: str | None) -> list[str]:
    """Mark FAILED the RUNNING runs of this stage and arm whose process on this host is gone (killed, crashed,
    machine rebooted), so an interrupted attempt does not look like it is still going."""
    mlflow = _mlflow()
    flt = f"tags.stage = '{stage}' and attributes.status = 'RUNNING'" + (f" and tags.arm = '{arm}'" if arm else "")
    client, host, failed = mlflow.MlflowClient(), socket.gethostname(), []
    for run in mlflow.search_runs(experiment_ids=[experiment_id(experiment)], filter_string=flt, output_format="list"):
        tags = run.data.tags
        if tags.get("host") == host and tags.get("pid", "").isdigit() and not _alive(int(tags["pid"])):
            client.set_tag(run.info.run_id, "failure", "interrupted: its process is gone; a later attempt resumed")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    return failed


@contextlib.contextmanager
def stage_run(
    stage: str, experiment: str, params: dict[str, Any], arm: str | None = None, final: bool = False
) -> Iterator[Any]:
    """A nested MLflow run for one stage (and arm) under the pipeline's parent run.

    transformers' MLflowCallback logs the training curves into it (it reuses the active run). The run ends
    FAILED if the stage raises. With `final`, a parent that this process found by key is finished too.
    """
    from safealign.config import flatten

    if not is_main_process():  # one MLflow run per stage, from the main process of a distributed launch
        yield None
        return
    mlflow = _mlflow()
    parent_id, keyed = resolve_parent(experiment)
    name = f"{stage}@{arm}" if arm else stage
    fail_stale_runs(experiment, stage, arm)
    tags = pipeline_tags() | {
        "stage": stage,
        "pid": str(os.getpid()),
        "host": socket.gethostname(),
        **({"arm": arm} if arm else {}),
    }
    mlflow.set_experiment(experiment_id=experiment_id(experiment))
    with mlflow.start_run(run_name=name, parent_run_id=parent_id, tags=tags) as run:
        flat = {k: (str(v)[:6000] if v is not None else "null") for k, v in flatten(params).items()}
        for i in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(list(flat.items())[i : i + 100]))
        yield run
    if final and keyed:
        end_parent(parent_id)


@main_process_only
def log_dict_metrics(metrics: dict[str, Any], prefix: str = "", step: int | None = None) -> None:
    """Log every number in a nested dict as `prefix/a/b` (MLflow allows slashes in metric names)."""
    from safealign.config import flatten

    mlflow = _mlflow()
    flat = {
        (prefix + k).replace(".", "/"): float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v
    }
    if flat:
        mlflow.log_metrics(flat, step=step)


@main_process_only
def record_compute(record: Any, path: str, prices: Any) -> None:
    """Save a stage's ComputeRecord to `path` (the DVC metrics file) and log it on the active stage run: FLOPs,
    wall time, CPU- and GPU-hours, padding, and money at the prices in params (`cost` section) when the stage ran.
    Stages do not list `cost` as a DVC param: a price change re-prices the arms in stage cost, it does not
    retrain anything."""
    from safealign.compute import money

    record.save(path)
    usd = money(record.to_dict(), prices.usd_per_cpu_hour, prices.usd_per_gpu_hour)
    _mlflow().log_metrics(
        {
            "compute/flops": record.flops,
            "compute/wall_s": record.wall_s,
            "compute/cpu_hours": record.cpu_hours,
            "compute/gpu_hours": record.gpu_hours,
            "compute/usd": usd,
            "compute/padding_tokens": float(record.padding_tokens),
        }
    )


# --- thin MLflow calls for the stages (the only module that imports mlflow) --------------------------------


@main_process_only
def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    _mlflow().log_metrics(metrics, step=step)


@main_process_only
def log_artifact(path: str | Path, run_id: str | None = None) -> None:
    """On the active run, or on `run_id` (e.g. the pipeline's parent run)."""
    mlflow = _mlflow()
    if run_id:
        mlflow.MlflowClient().log_artifact(run_id, str(path))
    else:
        mlflow.log_artifact(str(path))


@main_process_only
def log_artifacts(folder: str | Path, artifact_path: str) -> None:
    _mlflow().log_artifacts(str(folder), artifact_path=artifact_path)


@main_process_only
def set_tags(tags: dict[str, str], run_id: str | None = None) -> None:
    mlflow = _mlflow()
    if run_id:
        client = mlflow.MlflowClient()
        for k, v in tags.items():
            client.set_tag(run_id, k, v)
    else:
        mlflow.set_tags(tags)


def log_curve(path: str | Path) -> None:
    """A safety curve (metrics/curves/<arm>.json) as MLflow metrics, step = RL update."""
    import json

    for point in json.loads(Path(path).read_text())["points"]:
        if point["harmful_rate"] is not None:
            metrics = {
                "curve/harmful_rate": point["harmful_rate"],
                "curve/cumulative_tflops": point["cumulative_flops"] / 1e12,
            }
            log_metrics(metrics, step=point["update"])


def log_run_metrics(run_id: str, metrics: dict[str, float]) -> None:
    client = _mlflow().MlflowClient()
    for k, v in metrics.items():
        client.log_metric(run_id, k, v)


# --- the model registry: candidates, the `champion` alias ------------------------------------------------------


def register_candidate(name: str, merged_dir: str | Path, run_id: str) -> str:
    """Log a merged, self-contained model directory under `policy/` of `run_id` and register it as a new version
    of `name`; returns the version (a string)."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    client.log_artifacts(run_id, str(merged_dir), artifact_path="policy")
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            name, description="safealign hybrid policy (SFT then PPO); alias champion = served"
        )
    source = f"{client.get_run(run_id).info.artifact_uri}/policy"
    return str(client.create_model_version(name, source=source, run_id=run_id).version)


def champion_version(name: str):
    """The model version behind the alias `champion`, or None."""
    mlflow = _mlflow()
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return None


def set_champion(name: str, version: str) -> None:
    _mlflow().MlflowClient().set_registered_model_alias(name, "champion", version)


def tag_model_version(name: str, version: str, tags: dict[str, str]) -> None:
    client = _mlflow().MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)


def download_champion(name: str, dest: Path) -> Path:
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    return Path(_mlflow().artifacts.download_artifacts(f"models:/{name}@champion", dst_path=str(dest)))
