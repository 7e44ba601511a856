"""Shared fixtures: offline env, a tiny benchmark, and a throwaway pipeline repo for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

for k, v in {
    "HF_HUB_OFFLINE": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(k, v)

# The tiny experiment: the real params.yaml with the `tiny` profile, few steps, two languages.
TINY_OVERRIDES = {
    "model.profile": "tiny",
    "data.languages": ["en", "zh"],
    "data.train_languages": ["en"],
    "sft.args.max_steps": 3,
    "sft.args.logging_steps": 1,
    "reward.args.max_steps": 3,
    "ppo.args.total_episodes": 16,
    "ppo.args.response_length": 12,
    "evaluate.items_per_language": {"harmful": 4, "benign": 2, "reasoning": 2},
    "evaluate.max_new_tokens": 12,
    "evaluate.bootstrap_samples": 200,
    "detect.c_grid": {"classifier": [10.0], "embedding": [0.1]},
    # the fixture's annotated answers are a small real slice (zh: 3 harmful answers in judge-test, which the judge
    # misses) and a random model writes nothing on topic: the tiny run checks the wiring of measured languages, so
    # the targets are set low enough that en and zh both count as validated and written (the real targets are in
    # params.yaml; tests/test_judging.py checks that a language missing them is not measured)
    "detect.targets": {"accuracy": 0.5, "f1": 0.0, "min_harmful": 1},
    "evaluate.min_on_topic": 0.0,
    "curve.items_per_language": 4,
    "grpo.args.max_steps": 2,
    "grpo.args.max_completion_length": 12,
    "curve.max_new_tokens": 8,
    "ppo.checkpoint_every": 1,
    # the default run leaves GRPO to the headline experiment; the tiny run wires every arm
    "grpo.arms": {"hybrid_grpo": "models/sft"},
    "ppo.equal_compute": {"pure_rl_equal": "models/base"},
    "evaluate.arms": {
        "base": "models/base",
        "sft_only": "models/sft",
        "pure_rl": "models/ppo/pure_rl",
        "hybrid": "models/ppo/hybrid",
        "hybrid_grpo": "models/grpo/hybrid_grpo",
        "pure_rl_equal": "models/ppo/pure_rl_equal",
    },
}


def tiny_params() -> dict:
    from safealign.config import set_dotted

    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    for k, v in TINY_OVERRIDES.items():
        set_dotted(tree, k, v)
    return tree


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    return FIXTURES / "benchmark"


def make_repo(dest: Path) -> Path:
    """A fresh git+DVC repo holding the pipeline definition, the sources it hashes, and the tiny benchmark."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "configs", dest / "configs")
    shutil.copytree(FIXTURES / "benchmark", dest / "data" / "benchmark")
    shutil.copytree(FIXTURES / "labeled_real", dest / "data" / "labeled_real")
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    (dest / ".gitignore").write_text("/models/\n/checkpoints/\n/eval/\nmlflow.db\n/mlruns/\n")
    env = os.environ | {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dest, check=True, env=env)
    with (dest / ".dvc" / "config").open("a") as fh:  # the offline plots page, as in the project's .dvc/config
        fh.write("[plots]\n    html_template = ../configs/dvc/plots.html\n")
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "tiny pipeline"], cwd=dest, check=True, env=env)
    return dest


def run_env(repo: Path) -> dict[str, str]:
    """Environment for a subprocess in `repo`: the venv first on PATH, MLflow in the repo's own sqlite."""
    return os.environ | {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
    }


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=run_env(repo), capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """The tiny experiment run once end to end with `dvc repro` (shared by the pipeline tests, which copy it). Under
    pytest-xdist the workers share one: the first builds it under a file lock, the others wait and reuse it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    repo, done = root / "tiny-shared" / "repo", root / "tiny-shared.done"
    with FileLock(str(root / "tiny-shared.lock")):
        if not done.exists():
            shutil.rmtree(repo.parent, ignore_errors=True)
            make_repo(repo)
            out = dvc(repo, "repro", check=False)
            assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
            done.touch()
    return repo


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved `tiny` profile model (random 2-layer Llama, SmolLM2 tokenizer), built once per session."""
    from safealign.models import build_base, write_lineage

    out = tmp_path_factory.mktemp("tiny_model")
    model, tok = build_base("tiny", seed=0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_lineage(out, kind="full", parent=None, stage="prepare_model")
    return out
