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
from safealign.tracking import PARENT_ENV
from tasks import steps
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
def hybrid_train(overrides: dict[str, Any] | None = None, force: bool = False, repo_dir: str | None = None) -> dict:
    """Validate data, SFT, reward model, PPO per RL arm, evaluate every arm, account cost; publish a summary."""
    logger = get_run_logger()
    repo = Path(repo_dir).resolve() if repo_dir else REPO
    overrides = overrides or {}
    with params_overrides(repo, overrides):
        params = load_params(repo / "params.yaml")
        from prefect.runtime import deployment

        tags = {"launched_by": "prefect", "prefect_flow_run_id": str(flow_run.id or ""),
                "prefect_deployment": str(deployment.name or "none"), "overrides": json.dumps(overrides)}  # fmt: skip
        parent = start_parent(params.mlflow.experiment, f"hybrid-train-{flow_run.name or 'local'}", tags)
        env = {PARENT_ENV: parent, "PREFECT__FLOW_RUN_ID": tags["prefect_flow_run_id"]}
        logger.info("MLflow parent run %s; overrides %s", parent, overrides or "none")
        ran: dict[str, bool] = {}
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
        except BaseException:
            end_parent(parent, "FAILED")
            raise
        summary = publish_summary(repo, list(params.evaluate.arms), ran)
        end_parent(parent, "FINISHED")
    return {"mlflow_parent_run_id": parent, "stages_run": ran, "summary": summary}


if __name__ == "__main__":
    hybrid_train()
