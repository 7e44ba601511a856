"""Shared fixtures: offline env, a tiny benchmark, and a throwaway pipeline repo for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


# Test files that use the shared tiny run (`tiny_repo`), longest first by their time once the run exists (measured
# 2026-12-03: ~250, 160, 120, 115, 80, 45, 40 s). With `--no-loadscope-reorder` xdist hands files out in collection
# order, so the longest starts on one worker as soon as the run is built, while the light files keep the other
# worker busy during the build (which runs in the background from the start of the session).
TINY_FILES = (
    "test_nightly.py",
    "test_flow.py",
    "test_ppo_resume.py",
    "test_scaleout.py",
    "test_pipeline.py",
    "test_dvc_exp.py",
    "test_determinism.py",
)
TINY_TIMEOUT_S = 1800


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        if name not in TINY_FILES:
            return 1
        return 0 if name == TINY_FILES[0] else 2 + TINY_FILES.index(name)

    items.sort(key=rank)  # stable: the order inside a file is kept


def pytest_collection_finish(session):
    if any("tiny_repo" in getattr(item, "fixturenames", ()) for item in session.items):
        start_tiny_build(shared_root(session.config._tmp_path_factory))


def shared_root(tmp_path_factory) -> Path:
    """The session's temporary folder, which all xdist workers share (each has its own below it)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def start_tiny_build(root: Path) -> None:
    """Start the tiny run in the background once per session (the first worker to get here starts it)."""
    from filelock import FileLock

    with FileLock(str(root / "tiny-shared.lock")):
        started = root / "tiny-shared.started"
        if started.exists():
            return
        code = f"from pathlib import Path; from tests.conftest import build_tiny; build_tiny(Path({str(root)!r}))"
        with (root / "tiny-shared.log").open("w") as log:  # the builder keeps its own copy of the handle
            proc = subprocess.Popen(
                [sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.write_text(str(proc.pid))


def build_tiny(root: Path) -> None:
    """The tiny experiment end to end with `dvc repro`; leaves `tiny-shared.done`, or `tiny-shared.failed` with the
    reason."""
    repo = root / "tiny-shared" / "repo"
    try:
        shutil.rmtree(repo.parent, ignore_errors=True)
        make_repo(repo)
        out = dvc(repo, "repro", check=False)
        if out.returncode:
            raise RuntimeError(f"dvc repro exited {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    except Exception as e:
        (root / "tiny-shared.failed").write_text(f"{type(e).__name__}: {e}")
        raise
    (root / "tiny-shared.done").touch()


def builder_alive(root: Path) -> bool:
    """The builder still runs (not gone, nor a zombie its starter has not reaped), or it has finished."""
    pid = (root / "tiny-shared.started").read_text().strip()
    try:
        running = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        running = False
    return running or (root / "tiny-shared.done").exists() or (root / "tiny-shared.failed").exists()


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """The tiny experiment run once end to end with `dvc repro` (shared by the pipeline tests, which copy it). It is
    built in the background from the start of the session, once for all xdist workers; this waits for it."""
    root = shared_root(tmp_path_factory)
    start_tiny_build(root)  # already started at collection, unless the fixture is reached another way
    deadline = time.monotonic() + TINY_TIMEOUT_S
    while not (root / "tiny-shared.done").exists():
        failed = root / "tiny-shared.failed"
        assert not failed.exists(), "the tiny run failed:\n" + failed.read_text()
        assert builder_alive(root), f"the tiny run's builder died without a word: see {root / 'tiny-shared.log'}"
        assert time.monotonic() < deadline, f"the tiny run did not finish in {TINY_TIMEOUT_S} s: see {root}"
        time.sleep(1)
    return root / "tiny-shared" / "repo"


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
