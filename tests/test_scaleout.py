"""Scale-out pieces that can run on this machine: the accelerate configs load in accelerate, the work-pool
deployments in prefect.yaml point at a real flow with valid parameters, and MLflow works through a tracking
server with a database and its artifacts in S3 (SeaweedFS on loopback)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "name,kind",
    [("deepspeed_zero2", "DEEPSPEED"), ("deepspeed_zero3", "DEEPSPEED"), ("fsdp", "FSDP"), ("single_gpu", "NO")],
)
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(ROOT / "configs/accelerate" / f"{name}.yaml"))
    assert cfg.distributed_type.value == kind
    if kind == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])


def test_work_pool_deployments_match_the_flow():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert names == {"nightly", "manual", "headline"}
    for d in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / d["entrypoint"]))
        assert flow.name == "hybrid-train"
        flow.validate_parameters(d.get("parameters", {}))  # raises on an unknown or mistyped parameter
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    nightly = next(d for d in spec["deployments"] if d["name"] == "nightly")
    assert nightly["parameters"] == {"ingest": True, "gate": True} and nightly["schedules"][0]["cron"]
    headline = next(d for d in spec["deployments"] if d["name"] == "headline")
    assert (
        headline["parameters"] == {"experiment": "headline"} and (ROOT / "configs/experiments/headline.yaml").exists()
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_tracking_server_with_database_and_s3_artifacts(tmp_path):
    from tools.s3local import S3ServerError, local_s3, weed_binary

    try:
        weed_binary()
    except S3ServerError as e:
        pytest.skip(f"SeaweedFS not installed ({e})")
    with local_s3(tmp_path / "seaweed", set_env=False) as s3:
        env = os.environ | s3.env() | {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}
        boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
        ).create_bucket(Bucket="mlflow")
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{tmp_path / 'tracking.db'}",
                "--artifacts-destination",
                "s3://mlflow/artifacts",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            script = (
                "import mlflow, pathlib, sys\n"
                "from safealign.tracking import experiment_id, start_parent, end_parent\n"
                "rid = start_parent('safealign', 'scale-out', {'launched_by': 'test'})\n"
                "p = pathlib.Path(sys.argv[1]); p.write_text('hello')\n"
                "mlflow.MlflowClient().log_artifact(rid, str(p)); mlflow.MlflowClient().log_metric(rid, 'm', 1.0)\n"
                "end_parent(rid)\nprint(rid)\n"
            )
            deadline = time.time() + 120
            while True:  # the server takes a few seconds to come up
                out = subprocess.run(
                    [sys.executable, "-c", script, str(tmp_path / "note.txt")],
                    capture_output=True,
                    text=True,
                    env=os.environ | {"MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
                )
                if out.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(2)
            assert out.returncode == 0, out.stderr[-3000:]
            run_id = out.stdout.split()[-1]
            # the client had no S3 credentials at all: the server proxied the artifact into the bucket
            s3c = boto3.client(
                "s3",
                endpoint_url=s3.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id=s3.access_key,
                aws_secret_access_key=s3.secret_key,
            )
            keys = [o["Key"] for o in s3c.list_objects_v2(Bucket="mlflow").get("Contents", [])]
            assert any(run_id in k and k.endswith("note.txt") for k in keys), keys
            import mlflow

            mlflow.set_tracking_uri(url)
            run = mlflow.get_run(run_id)
            assert run.info.status == "FINISHED" and run.data.metrics["m"] == 1.0
        finally:
            server.terminate()
            server.wait(30)


def test_two_process_launch_of_sft_and_reward(tiny_repo, tmp_path):
    """`accelerate launch --num_processes 2` on the CPU (torch.distributed with gloo): both processes train, only the
    main one writes models, metrics and lineage, there is one MLflow run per stage, and the outputs have the same
    files and tensor shapes as a single-process run; compute counts both processes."""
    import json
    import shutil

    import mlflow
    from safetensors import safe_open

    from .conftest import run_env

    repo = tmp_path / "ddp"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    single = {d: sorted(p.name for p in (tiny_repo / "models" / d).iterdir()) for d in ("sft", "reward")}
    (repo / "mlflow.db").unlink()
    for stage, out in (("sft", "models/sft"), ("reward", "models/reward")):
        shutil.rmtree(repo / out)
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            f"safealign.stages.{stage}",
        ]
        done = subprocess.run(cmd, cwd=repo, env=run_env(repo), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert (
            done.stderr.count(f"stage {stage}, resolved params") + done.stdout.count(f"stage {stage}, resolved params")
            == 2
        )
        assert sorted(p.name for p in (repo / out).iterdir()) == single[stage]
        record = json.loads((repo / f"metrics/compute/{stage}.json").read_text())
        assert record["extra"]["processes"] == 2 and record["trained_tokens"] > 0
    shapes = {}
    for root in (tiny_repo, repo):
        with safe_open(str(root / "models/sft/adapter_model.safetensors"), "pt") as f:
            shapes[root] = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    assert shapes[tiny_repo] == shapes[repo]
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    names = [r.info.run_name for r in mlflow.search_runs(experiment_names=["safealign"], output_format="list")]
    assert names.count("sft") == 1 and names.count("reward") == 1


def test_mlflow_calls_do_nothing_outside_the_main_process(tmp_path, monkeypatch):
    """A distributed launch logs once: on a non-main rank every tracking call returns without touching MLflow or
    writing the compute record (the 2-process launch below checks the same end to end)."""
    from safealign import tracking
    from safealign.compute import ComputeRecord

    def no_mlflow():
        raise AssertionError("MLflow touched on a non-main rank")

    monkeypatch.setattr(tracking, "_mlflow", no_mlflow)
    monkeypatch.setattr(tracking, "is_main_process", lambda: False)
    record = tmp_path / "compute.json"
    tracking.log_metrics({"a": 1.0})
    tracking.log_dict_metrics({"a": {"b": 1.0}})
    tracking.log_artifact(record)
    tracking.log_artifacts(tmp_path, "x")
    tracking.set_tags({"a": "b"})
    tracking.record_compute(ComputeRecord("s", "cpu"), str(record), None)
    assert not record.exists()
    monkeypatch.setattr(tracking, "is_main_process", lambda: True)
    with pytest.raises(AssertionError, match="non-main"):
        tracking.log_metrics({"a": 1.0})
