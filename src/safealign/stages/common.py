"""What every stage entry point does first: environment, logging, params, and the resolved config logged."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safealign.config import ConfigError, Params, load_params
from safealign.data import DataError

# Offline and quiet by default; a user who wants the hub for a hub profile sets HF_HUB_OFFLINE=0 themselves.
ENV_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "HF_MLFLOW_LOG_ARTIFACTS": "false",  # we log adapters/models ourselves, once
    "DISABLE_MLFLOW_INTEGRATION": "FALSE",
}
log = logging.getLogger("safealign")


def setup(stage: str, argv: list[str] | None = None, with_arm: bool = False) -> tuple[Params, argparse.Namespace]:
    for k, v in ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    parser = argparse.ArgumentParser(prog=f"python -m safealign.stages.{stage}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if with_arm:
        parser.add_argument("--arm", required=True, help="which arm (a key of the stage's arms in params)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("httpx", "urllib3", "filelock", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    params = load_params(args.params)
    log.info(
        "stage %s%s, resolved params: %s",
        stage,
        f"@{args.arm}" if with_arm else "",
        json.dumps(params.to_dict(), default=str),
    )
    return params, args


def run_main(fn, *a: Any, **kw: Any) -> None:
    """Run a stage's main; turn known input errors into one clear line on stderr and exit code 2."""
    try:
        fn(*a, **kw)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Write a directory under a temporary name and move it into place only when the block succeeds, so an
    interrupted stage never leaves a partial model where a good one is expected."""
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


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def hf_args(cls: type, params_args: dict[str, Any], section: str, output_dir: str | Path, seed: int) -> Any:
    """A TRL config from params: the user's fields by their own names, plus what the pipeline controls
    (output dir, MLflow reporting, seed, CPU/GPU precision)."""
    import torch

    from safealign.config import trainer_args

    args = dict(params_args)
    cuda = torch.cuda.is_available()
    # TRL configs default bf16=True, which fails on CPU; keep the user's choice only where a GPU runs.
    args["bf16"] = bool(args.get("bf16", True)) and cuda and torch.cuda.is_bf16_supported()
    return trainer_args(
        cls,
        args,
        section,
        output_dir=str(output_dir),
        report_to=["mlflow"],
        seed=seed,
        use_cpu=not cuda,
    )
