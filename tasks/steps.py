"""One Prefect task per step. Each runs its stage through DVC (`dvc repro --single-item <stage>`), so a
Prefect run and a plain `dvc repro` share the cache, the lock file and the run-cache.

Training steps never retry: a failed SFT or PPO should fail the flow loudly, not burn compute again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import get_run_logger, task


def stage_graph(repo: Path) -> dict[str, list[str]]:
    """{stage: the stages it depends on}, in DVC's own execution order (the post-order walk `dvc repro` uses).
    DVC's graph has an edge from each stage to the stages whose outputs it reads."""
    from dvc.repo import Repo
    from dvc.repo.reproduce import plan_repro

    with Repo(str(repo)) as r:
        graph = r.index.graph
        order = [s for s in plan_repro(graph) if getattr(s, "cmd", None)]
        return {s.name: sorted(d.name for d in graph.successors(s) if getattr(d, "cmd", None)) for s in order}


def stage_order(repo: Path) -> list[str]:
    return list(stage_graph(repo))


def repro(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Run one DVC stage, streaming its output to the Prefect log; True if it ran, False if DVC skipped it."""
    logger = get_run_logger()
    venv_bin = str(Path(sys.executable).parent)
    full_env = os.environ | env | {"PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage] + (["--force"] if force else [])
    logger.info("$ %s", " ".join(cmd[2:]))
    proc = subprocess.Popen(cmd, cwd=repo, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ran = True
    tail: list[str] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        line = line.rstrip()
        if "didn't change, skipping" in line:
            ran = False
        if line and "\r" not in line:
            logger.info(line)
            tail = (tail + [line])[-30:]
    if proc.wait() != 0:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return ran


@task(name="validate-data", task_run_name="validate")
def validate_data(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Great Expectations suites on every dataset; stops the flow before any training on bad data."""
    return repro("validate", repo, env, force)


@task(name="prepare-model", task_run_name="prepare_model")
def prepare_model(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Materialize the profile's base model as safetensors (cached by DVC)."""
    return repro("prepare_model", repo, env, force)


@task(name="sft", task_run_name="sft")
def train_sft(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Supervised fine-tuning on safe demonstrations."""
    return repro("sft", repo, env, force)


@task(name="reward-model", task_run_name="reward")
def train_reward(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Reward model on the preference pairs."""
    return repro("reward", repo, env, force)


@task(name="ppo", task_run_name="{stage}")
def train_ppo(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """PPO for one RL arm against the safety reward."""
    return repro(stage, repo, env, force)


@task(name="evaluate", task_run_name="{stage}")
def evaluate(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Cross-lingual evaluation of one arm by the held-out judge."""
    return repro(stage, repo, env, force)


@task(name="cost", task_run_name="cost")
def account_cost(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Compute and money per stage and arm; the headline numbers."""
    return repro("cost", repo, env, force)


@task(name="stage", task_run_name="{stage}")
def other_stage(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """A stage of dvc.yaml without a dedicated task."""
    return repro(stage, repo, env, force)
