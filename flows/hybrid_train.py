"""The `hybrid-train` flow: the DVC stage graph as a Prefect run, one task run per step.

    python -m flows.hybrid_train                         # one run now, in-process
    prefect deployment run hybrid-train/manual --watch   # through a served deployment (see flows/serve.py)

The flow walks dvc.yaml's stages in DVC's own order and runs each with `dvc repro --single-item`, so it shares
the cache, dvc.lock and run-cache with a plain `dvc repro`. Overrides (dotted params keys, as `dvc exp run -S`)
apply to params.yaml for this run only; they are recorded on the MLflow parent run and restored afterwards.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from safealign.config import load_params, set_dotted
from safealign.runlock import run_lock
from safealign.tracking import PARENT_ENV
from tasks import steps
from tasks.data import ingest_drop, pipeline_changed, version_data
from tasks.gate import champion_gate
from tasks.tracking import end_parent, publish_summary, start_parent

TASKS = {
    "validate": steps.validate_data,
    "prepare_model": steps.prepare_model,
    "sft": steps.train_sft,
    "reward": steps.train_reward,
    "ppo": steps.train_ppo,
    "evaluate": steps.evaluate,
    "cost": steps.account_cost,
}
PER_ARM = {"ppo", "evaluate"}
REPO = Path(__file__).resolve().parent.parent


@contextmanager
def params_overrides(repo: Path, overrides: dict[str, Any]):
    """Apply dotted-key overrides to params.yaml for the duration of the run (validated first), then restore."""
    path = repo / "params.yaml"
    if not overrides:
        yield
        return
    load_params(path, overrides)  # a bad key or type fails here, before anything runs
    backup = path.with_name("params.yaml.before-override")
    shutil.copy2(path, backup)
    tree = yaml.safe_load(path.read_text())
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    path.write_text(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))
    try:
        yield
    finally:
        shutil.move(backup, path)


@flow(name="hybrid-train", log_prints=True)
def hybrid_train(overrides: dict[str, Any] | None = None, force: bool = False, repo_dir: str | None = None,
                 ingest: bool = False, gate: bool = False) -> dict:  # fmt: skip
    """Validate data, SFT, reward model, PPO per RL arm, evaluate every arm, account cost; publish a summary.

    The nightly deployment sets `ingest` (pull new red-team files from the S3 drop into data/ first; a night with
    nothing new and nothing out of date trains nothing) and `gate` (promote the new hybrid to the registry alias
    `champion` only if it does not regress). One run at a time per checkout.
    """
    logger = get_run_logger()
    repo = Path(repo_dir).resolve() if repo_dir else REPO
    overrides = overrides or {}
    with run_lock(repo), params_overrides(repo, overrides):
        params = load_params(repo / "params.yaml")
        ingested: dict = {}
        if ingest:
            d = params.data
            limits = {"min_chars": d.min_chars, "max_prompt_chars": d.max_prompt_chars, "max_response_chars": d.max_response_chars}
            ingested = ingest_drop(repo, d.languages, limits)
            if ingested["files"]:
                logger.info("new data version %s", version_data(repo))
            elif not force and not pipeline_changed(repo):
                logger.info("no new data and the pipeline is up to date: nothing to train tonight")
                return {"skipped": True, "reason": "no new data"}
        from prefect.runtime import deployment

        tags = {"launched_by": "prefect", "prefect_flow_run_id": str(flow_run.id or ""),
                "prefect_deployment": str(deployment.name or "none"), "overrides": json.dumps(overrides),
                "ingested_files": str(len(ingested.get("files", [])))}  # fmt: skip
        parent = start_parent(params.mlflow.experiment, f"hybrid-train-{flow_run.name or 'local'}", tags)
        env = {PARENT_ENV: parent, "PREFECT__FLOW_RUN_ID": tags["prefect_flow_run_id"]}
        logger.info("MLflow parent run %s; overrides %s", parent, overrides or "none")
        ran: dict[str, bool] = {}
        gate_result = None
        try:
            for stage in steps.stage_order(repo):
                kind = stage.split("@")[0]
                step = TASKS.get(kind)
                if step is None:
                    ran[stage] = steps.other_stage(stage, repo, env, force)
                elif kind in PER_ARM:
                    ran[stage] = step(stage, repo, env, force)
                else:
                    ran[stage] = step(repo, env, force)
            if gate:
                gate_result = champion_gate(repo, params, parent)
        except BaseException:
            end_parent(parent, "FAILED")
            raise
        summary = publish_summary(repo, list(params.evaluate.arms), ran)
        end_parent(parent, "FINISHED")
    return {"mlflow_parent_run_id": parent, "stages_run": ran, "summary": summary, "gate": gate_result,
            "ingested": ingested}  # fmt: skip


if __name__ == "__main__":
    hybrid_train()
