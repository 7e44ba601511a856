"""Prefect-orchestrated pipeline vs the same stages called directly, on the tiny profile (target: < 3% overhead).

Two fresh copies of the tiny experiment: (a) each stage's command run in DVC's order by plain subprocess calls,
(b) the hybrid-train flow (Prefect tasks -> dvc repro --single-item). Prints both wall times and the overhead.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import make_repo, run_env  # noqa: E402


def direct(repo: Path) -> float:
    import yaml

    from tasks.steps import stage_order

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    t = time.perf_counter()
    for name in stage_order(repo):
        base, _, arm = name.partition("@")
        cmd = stages[base]["do"]["cmd"].replace("${key}", arm) if arm else stages[base]["cmd"]
        subprocess.run(cmd, shell=True, cwd=repo, env=run_env(repo), check=True, capture_output=True)
    return time.perf_counter() - t


def orchestrated(repo: Path) -> float:
    env = run_env(repo) | {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    code = f"from flows.hybrid_train import hybrid_train; hybrid_train(repo_dir={str(repo)!r})"
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


if __name__ == "__main__":
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        a = direct(make_repo(Path(tmp) / "direct"))
        b = orchestrated(make_repo(Path(tmp) / "flow"))
    print(
        f"tiny pipeline: stages called directly {a:.1f}s, Prefect flow through DVC {b:.1f}s, "
        f"overhead {(b - a) / a:+.1%} (includes the temporary Prefect API start-up and DVC's hashing)"
    )
