"""What the orchestration layers cost, on fresh copies of the tiny experiment (target: Prefect < 3%).

Three ways to run the same stages in DVC's order, each in a fresh interpreter on its own fresh repo:
  (a) `dvc repro`: the plain DVC CLI, which starts one interpreter per stage;
  (b) the stages through DVC's Python API with each stage's main called in one process (tasks.steps.repro, exactly
      what a flow task does), without Prefect;
  (c) the hybrid-train flow: (b) inside Prefect tasks, plus the temporary Prefect API, the MLflow parent run and
      the summary artifact.
(c) - (b) is Prefect's cost; (a) - (b) is what a new interpreter per stage costs. Prints the three wall times.

    python bench/orchestration_overhead.py                      # (a), (b), (c) on fresh tiny repos (~6 min)
    python bench/orchestration_overhead.py --workspace b c      # (b) and (c) on this checkout's own params, every
                                                                # stage forced (the default run: ~2 x 30 min)

On the workspace each way also prints the sum of the stages' metered wall time (metrics/compute/*.json, written by
that way's run) and the rest, which is what the orchestration adds: the A/B that does not depend on the noise of
the stages themselves. The workspace's outputs are recomputed (identical but for the compute records); check the
committed ones out again afterwards (`git checkout HEAD -- metrics reports dvc.lock && dvc checkout`: HEAD, since
DVC stages the new dvc.lock in git's index).
"""

import json
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
repo, force = Path(sys.argv[1]), sys.argv[2:] == ["force"]
for stage in stage_order(repo):
    repro(stage, repo, {}, force=force, logger=logging.getLogger("bench"))
"""
FLOW = (
    "import sys; from flows.hybrid_train import hybrid_train; "
    "hybrid_train(repo_dir=sys.argv[1], force=sys.argv[2:] == ['force'])"
)


def timed(cmd: list[str], repo: Path) -> float:
    env = run_env(repo) | {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180", "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - t


def metered_wall_s(repo: Path) -> float:
    return sum(json.loads(f.read_text())["wall_s"] for f in (repo / "metrics/compute").glob("*.json"))


def workspace(ways: list[str]) -> None:
    """(b) and/or (c) on this checkout, every stage forced, with the environment `make run` exports."""
    env = {
        "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
        "PREFECT_HOME": str(ROOT / ".prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "HF_HUB_OFFLINE": "1",
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    code = {"b": DIRECT, "c": FLOW}
    for way in ways:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code[way], str(ROOT), "force"], cwd=ROOT, env=os.environ | env)
        wall = time.perf_counter() - t
        if out.returncode:
            raise SystemExit(f"way ({way}) failed after {wall:.0f} s")
        metered = metered_wall_s(ROOT)
        print(f"({way}) wall {wall:.1f} s; stages metered {metered:.1f} s; the rest {wall - metered:.1f} s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    if sys.argv[1:2] == ["--workspace"]:
        workspace(sys.argv[2:] or ["b", "c"])
        raise SystemExit(0)
    with tempfile.TemporaryDirectory() as tmp:
        a = timed([sys.executable, "-m", "dvc", "repro"], make_repo(Path(tmp) / "plain"))
        b = timed([sys.executable, "-c", DIRECT, str(Path(tmp) / "direct")], make_repo(Path(tmp) / "direct"))
        c = timed([sys.executable, "-c", FLOW, str(Path(tmp) / "flow")], make_repo(Path(tmp) / "flow"))
    print(
        f"tiny pipeline, wall s: (a) dvc repro {a:.1f}  (b) DVC API + stage mains in one process {b:.1f}  "
        f"(c) flow {c:.1f}"
    )
    print(f"Prefect overhead (c vs b): {c - b:+.1f} s, {(c - b) / b:+.1%}")
    print(f"an interpreter per stage (a vs b): {a - b:+.1f} s, {(a - b) / b:+.1%}")
