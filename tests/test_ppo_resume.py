"""Fault injection: the process is killed in the middle of PPO (SIGKILL, no cleanup runs).

The rerun resumes from the last checkpoint instead of starting over, the interrupted MLflow run is marked FAILED,
and no partial model is published (neither in models/ nor as an MLflow artifact).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import mlflow
import yaml

from .conftest import dvc, run_env


def test_killed_ppo_resumes_from_checkpoint(tiny_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ppo"]["checkpoint_every"] = 1
    params["ppo"]["args"]["total_episodes"] = 40  # 5 updates of 8
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    state = repo / "checkpoints/ppo/pure_rl/state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "ppo@pure_rl"],
        cwd=repo,
        env=run_env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert state.exists(), "no PPO checkpoint was written"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: dvc and the stage process, mid-training
    proc.wait()
    done_at_kill = json.loads(state.read_text())["done"]
    assert 1 <= done_at_kill < 5
    # nothing partial where a model is expected, and the killed stage's run still says RUNNING
    assert not (repo / "models/ppo/pure_rl").exists()
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(params["mlflow"]["experiment"])
    flt = "tags.stage = 'ppo' and tags.arm = 'pure_rl' and attributes.status = 'RUNNING'"
    (killed,) = client.search_runs([exp.experiment_id], flt)

    out = dvc(repo, "repro", "ppo@pure_rl", check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"resuming PPO pure_rl at update {done_at_kill}/5" in out.stdout + out.stderr
    summary = json.loads((repo / "metrics/compute/ppo_pure_rl.json").read_text())
    assert summary["extra"]["resumed_at_update"] == done_at_kill and summary["extra"]["updates"] == 5
    assert summary["extra"]["resumed_with_prior_compute"]  # the killed attempt's compute still counts
    assert len(summary["extra"]["history"]) == 5  # one entry per update: none lost, none repeated
    assert (repo / "models/ppo/pure_rl/adapter_model.safetensors").exists()
    assert not (repo / "checkpoints/ppo/pure_rl").exists()  # cleared once the model is in place

    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "FAILED" and "interrupted" in killed.data.tags["failure"]
    assert not [a for a in client.list_artifacts(killed.info.run_id) if a.path == "model"]
    finished = client.search_runs(
        [exp.experiment_id],
        "tags.stage = 'ppo' and tags.arm = 'pure_rl'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    assert finished.info.status == "FINISHED"
    assert [a for a in client.list_artifacts(finished.info.run_id) if a.path == "model"]


def test_checkpoint_from_other_settings_is_ignored(tiny_repo, tmp_path):
    """A checkpoint written under other PPO settings must not be resumed: its fingerprint (safealign.train.ppo)
    is computed from the real settings before and after a change, and the run starts over."""
    import contextlib

    from safealign.config import load_params
    from safealign.train.ppo import fingerprint

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    with contextlib.chdir(repo):
        before = fingerprint(load_params("params.yaml"), "hybrid")
    ckpt = repo / "checkpoints/ppo/hybrid"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"done": 1, "fingerprint": before, "history": [], "compute": {}}))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ppo"]["args"]["learning_rate"] = 5.0e-5  # a real PPO setting: DVC reruns the stage, the fingerprint moves
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with contextlib.chdir(repo):
        after = fingerprint(load_params("params.yaml"), "hybrid")
        assert after != before and fingerprint(load_params("params.yaml"), "hybrid") == after  # deterministic
    out = dvc(repo, "repro", "ppo@hybrid", check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "made with other settings" in out.stdout + out.stderr
    assert json.loads((repo / "metrics/compute/ppo_hybrid.json").read_text())["extra"]["resumed_at_update"] is None
