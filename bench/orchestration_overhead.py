"""What the orchestration layers cost, on fresh copies of the tiny experiment (target: Prefect < 3%).

Three ways to run the same stages in DVC's order, each in a fresh interpreter on its own fresh repo:
  (a) `dvc repro`: the plain DVC CLI, which starts one interpreter per stage;
  (b) the stages through DVC's Python API with each stage's main called in one process (tasks.steps.repro, exactly
      what a flow task does), without Prefect;
  (c) the hybrid-train flow: (b) inside Prefect tasks, plus the temporary Prefect API, the MLflow parent run and
      the summary artifact.
(c) - (b) is Prefect's cost; (a) - (b) is what a new interpreter per stage costs. Prints the three wall times.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import make_repo, run_env  # noqa: E402

DIRECT = """
import logging, sys
from pathlib import Path
from tasks.steps import repro, stage_order
logging.basicConfig(level=logging.WARNING)
repo = Path(sys.argv[1])
for stage in stage_order(repo):
    repro(stage, repo, {}, logger=logging.getLogger("bench"))
"""
FLOW = "import sys; from flows.hybrid_train import hybrid_train; hybrid_train(repo_dir=sys.argv[1])"


def timed(cmd: list[str], repo: Path) -> float:
    env = run_env(repo) | {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180", "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - t


if __name__ == "__main__":
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        a = timed([sys.executable, "-m", "dvc", "repro"], make_repo(Path(tmp) / "plain"))
        b = timed([sys.executable, "-c", DIRECT, str(Path(tmp) / "direct")], make_repo(Path(tmp) / "direct"))
        c = timed([sys.executable, "-c", FLOW, str(Path(tmp) / "flow")], make_repo(Path(tmp) / "flow"))
    print(
        f"tiny pipeline, wall s: (a) dvc repro {a:.1f}  (b) DVC API + stage mains in one process {b:.1f}  (c) flow {c:.1f}"
    )
    print(f"Prefect overhead (c vs b): {c - b:+.1f} s, {(c - b) / b:+.1%}")
    print(f"an interpreter per stage (a vs b): {a - b:+.1f} s, {(a - b) / b:+.1%}")
