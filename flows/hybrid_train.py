"""The `hybrid-train` flow: the DVC stage graph as a Prefect run, one task run per step.

    python -m flows.hybrid_train                         # one run now, in-process
    prefect deployment run hybrid-train/manual --watch   # through a served deployment (see flows/serve.py)

The flow walks dvc.yaml's stages in DVC's own order and runs each with `dvc repro --single-item` (DVC's Python API;
the stage's own command is called in the worker process, see tasks/steps.py), so it shares the cache, dvc.lock and
run-cache with a plain `dvc repro`. Overrides (dotted params keys, as `dvc exp run -S`)
apply to params.yaml for this run only; they are recorded on the MLflow parent run and restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.utilities.annotations import quote

from safealign import experiments
from safealign.config import ConfigError, Params, load_params, set_dotted
from safealign.data import DataError
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
    "ppo_equal": steps.train_ppo,
    "evaluate": steps.evaluate,
    "cost": steps.account_cost,
}
PER_ARM = {"ppo", "ppo_equal", "evaluate"}
REPO = Path(__file__).resolve().parent.parent


def check_run(repo: Path, overrides: dict[str, Any]) -> Params:
    """Everything that can be checked before a run touches anything: params.yaml with the overrides applied
    (unknown keys, types, ranges), every trainer's `args` against its TRL config, and the evaluation's coverage of
    the data. Raises ConfigError or DataError naming the key."""
    from safealign.validation import check_coverage, check_trainer_params

    params = load_params(repo / "params.yaml", overrides)
    with contextlib.chdir(repo):
        check_trainer_params(params)
        check_coverage(params)
    return params


@contextmanager
def params_overrides(repo: Path, overrides: dict[str, Any]):
    """Apply dotted-key overrides to params.yaml for the duration of the run (checked first by check_run), then
    restore the file byte for byte. Written with ruamel (YAML 1.2, comments kept), as `dvc exp run -S` does."""
    from ruamel.yaml import YAML

    path = repo / "params.yaml"
    if not overrides:
        yield
        return
    backup = path.with_name("params.yaml.before-override")
    shutil.copy2(path, backup)
    yml = YAML()
    tree = yml.load(path.read_text())
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    with path.open("w") as fh:
        yml.dump(tree, fh)
    try:
        yield
    finally:
        shutil.move(backup, path)


# log_prints stays off: Prefect's print patch ignores a swapped sys.stdout, so code that captures print output to
# read it back got nothing and the text went to the run's log instead (datasets hashes a map function with dill,
# whose nestedglobals reads `dis.dis` output that way: hundreds of disassembly lines per SFT stage). Stages log
# through `logging`, which the tasks forward; a failing stage's error comes back in the task's exception.
@flow(name="hybrid-train", log_prints=False)
def hybrid_train(
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    repo_dir: str | None = None,
    ingest: bool = False,
    gate: bool = False,
    experiment: str | None = None,
) -> dict:
    """Validate data, SFT, reward model, PPO per RL arm, evaluate every arm, account cost; publish a summary.

    `experiment` names a file of overrides (configs/experiments/<name>.yaml, e.g. `tiny`); `overrides` win over
    it. The nightly deployment sets `ingest` (pull new red-team files from the S3 drop into data/ first; a night with
    nothing new and nothing out of date trains nothing) and `gate` (promote the new hybrid to the registry alias
    `champion` only if it does not regress). One run at a time per checkout.
    """
    logger = get_run_logger()
    repo = Path(repo_dir).resolve() if repo_dir else REPO
    try:  # before the lock, the MLflow run, any file write or any stage
        overrides = (experiments.overrides(experiment, repo) if experiment else {}) | (overrides or {})
        check_run(repo, overrides)
    except (ConfigError, DataError) as e:
        message = f"rejected before anything ran: {e}"
        logger.error(message)
        return Failed(message=message)
    with run_lock(repo), params_overrides(repo, overrides):
        params = load_params(repo / "params.yaml")
        ingested: dict = {}
        if ingest:
            d = params.data
            limits = {
                "min_chars": d.min_chars,
                "max_prompt_chars": d.max_prompt_chars,
                "max_response_chars": d.max_response_chars,
            }
            ingested = ingest_drop(repo, d.languages, limits)
            if ingested["files"]:
                logger.info("new data version %s", version_data(repo))
            elif not force and not pipeline_changed(repo):
                logger.info("no new data and the pipeline is up to date: nothing to train tonight")
                return {"skipped": True, "reason": "no new data"}
        from prefect.runtime import deployment

        tags = {
            "launched_by": "prefect",
            "prefect_flow_run_id": str(flow_run.id or ""),
            "prefect_deployment": str(deployment.name or "none"),
            "overrides": json.dumps(overrides),
            "experiment": experiment or "none",
            "ingested_files": str(len(ingested.get("files", []))),
        }
        parent = start_parent(params.mlflow.experiment, f"hybrid-train-{flow_run.name or 'local'}", tags)
        env = {PARENT_ENV: parent, "PREFECT__FLOW_RUN_ID": tags["prefect_flow_run_id"]}
        logger.info("MLflow parent run %s; overrides %s", parent, overrides or "none")
        ran: dict[str, bool] = {}
        gate_result = None
        try:
            # one task per stage, wired to the stages it reads from (the Prefect graph is dvc.yaml's graph); run
            # one at a time: DVC holds a lock on the repository while a stage runs
            futures: dict[str, Any] = {}
            for stage, upstream in steps.stage_graph(repo).items():
                kind = stage.split("@")[0]
                step = TASKS.get(kind, steps.other_stage)
                args = (stage,) if kind in PER_ARM or step is steps.other_stage else ()
                future = step.submit(
                    *args, repo, quote(env), force, wait_for=[futures[u] for u in upstream if u in futures]
                )
                ran[stage] = future.result()
                futures[stage] = future
            if gate:
                gate_result = champion_gate(repo, params, parent)
        except BaseException:
            end_parent(parent, "FAILED")
            raise
        summary = publish_summary(repo, list(params.evaluate.arms), ran, parent)
        end_parent(parent, "FINISHED")
    return {
        "mlflow_parent_run_id": parent,
        "stages_run": ran,
        "summary": summary,
        "gate": gate_result,
        "ingested": ingested,
    }


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(prog="python -m flows.hybrid_train", description="one hybrid-train run, in-process")
    cli.add_argument("--experiment", help="a named experiment (configs/experiments/<name>.yaml), e.g. tiny")
    cli.add_argument("--force", action="store_true", help="run every stage, even those DVC has cached")
    args = cli.parse_args()
    hybrid_train(experiment=args.experiment, force=args.force)
