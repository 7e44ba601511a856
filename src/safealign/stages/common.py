"""The skeleton every stage entry point shares, written once: environment, logging, params (the resolved config
logged first), the stage's MLflow run, its compute meter, and its compute record saved and logged at the end.

    def main(argv=None):
        with stage_main("sft", argv, sections=("sft", "data")) as run:
            with run.meter, atomic_dir(paths.SFT) as tmp:
                summary = train_sft(run.params, paths.BASE, tmp, ..., run.meter)
            ...write outputs, log metrics...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from safealign import paths
from safealign.compute import ComputeMeter
from safealign.config import LOGGING_ENV, ConfigError, Params, apply_env_defaults, load_params
from safealign.data import DataError
from safealign.tracking import log_artifacts, log_curve, record_compute, stage_run

log = logging.getLogger("safealign")


def setup(stage: str, argv: list[str] | None = None, with_arm: bool = False) -> tuple[Params, argparse.Namespace]:
    apply_env_defaults()
    parser = argparse.ArgumentParser(prog=f"python -m safealign.stages.{stage}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if with_arm:
        parser.add_argument("--arm", required=True, help="which arm (a key of the stage's arms in params)")
    args = parser.parse_args(argv)
    if os.environ.get(LOGGING_ENV) != "inherit":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("httpx", "urllib3", "filelock", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    params = load_params(args.params)
    arm = f"@{args.arm}" if with_arm else ""
    log.info("stage %s%s, resolved params: %s", stage, arm, json.dumps(params.to_dict(), default=str))
    return params, args


@dataclass
class StageRun:
    params: Params
    arm: str | None
    meter: ComputeMeter


@contextmanager
def stage_main(
    stage: str,
    argv: list[str] | None,
    sections: tuple[str, ...],
    arms: Callable[[Params], dict[str, str]] | None = None,
    final: bool = False,
) -> Iterator[StageRun]:
    """Set up, open the stage's MLflow run (logging the params `sections` it reads), and hand the body a meter;
    afterwards save the meter's record to metrics/compute/<stage>[_<arm>].json and log it. With `arms`, the
    stage takes --arm, which must be a key of arms(params). `final`: the last stage of a plain `dvc repro`, which
    closes the parent run it found by key."""
    params, cli = setup(stage, argv, with_arm=arms is not None)
    arm = cli.arm if arms is not None else None
    if arm is not None and arm not in arms(params):
        raise ConfigError(f"params.yaml: {stage} has no arm '{arm}' (have {sorted(arms(params))})")
    p = params.to_dict()
    logged = {s: p[s] for s in sections} | {"seed": params.seed}
    seed_everything(params.seed)
    with stage_run(stage, params.mlflow.experiment, logged, arm=arm, final=final):
        run = StageRun(params, arm, ComputeMeter(f"{stage}@{arm}" if arm else stage))
        yield run
        if run.meter.record.wall_s:  # the body metered something
            run.meter.record.sum_across_processes()  # every process of a distributed launch, counted once
            record_compute(run.meter.record, paths.compute_record(stage, arm), params.cost)


def end_rl_arm(run: StageRun, model_dir: str, progress: str) -> None:
    """An RL arm's ending, the same for PPO and GRPO: its safety curve as MLflow metrics, its adapter as an artifact
    (with mlflow.log_models), one line in the log ("ppo@hybrid: <progress>, <wall>s")."""
    log_curve(paths.curve(run.arm))
    if run.params.mlflow.log_models:
        log_artifacts(model_dir, "model")
    log.info("%s: %s, %.1fs", run.meter.record.stage, progress, run.meter.record.wall_s)


def seed_everything(seed: int) -> None:
    """Seed every global generator a stage may draw from before its own seeding: model heads and LoRA adapters are
    initialized from torch's global RNG before a trainer seeds it, and a fresh interpreter's torch seed is random.
    So a stage gives the same outputs on every run, in a fresh process or in a flow worker that ran others."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_main(fn, *a: Any, **kw: Any) -> None:
    """Run a stage's main; turn known input errors into one clear line on stderr and exit code 2."""
    try:
        fn(*a, **kw)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
