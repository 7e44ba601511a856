"""The hybrid-train Prefect flow under a test harness, on a throwaway tiny repo."""

import json

import mlflow
import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from flows.hybrid_train import hybrid_train

from .conftest import dvc, make_repo


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("flow") / "repo")


def runs(repo):
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["safealign"], output_format="list")


def test_flow_runs_every_stage_as_a_task_and_shares_dvc_cache(harness, repo, monkeypatch):
    """One flow run of the whole tiny pipeline: every stage is a task, each waiting on the tasks of the stages it
    reads from (the Prefect run graph is dvc.yaml's, not a fan-out from the MLflow parent run); the summary artifact
    leads with the headline; the flow and a plain `dvc repro` share one cache and lock."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo / 'mlflow.db'}")
    state = hybrid_train(repo_dir=str(repo), return_state=True)
    result = state.result()
    ran = result["stages_run"]
    assert list(ran)[:1] == ["validate"] and list(ran)[-2:] == ["cost", "report"]
    assert {
        "sft",
        "reward",
        "ppo@pure_rl",
        "ppo@hybrid",
        "grpo@hybrid_grpo",
        "ppo_equal@pure_rl_equal",
        "evaluate@hybrid",
        "prepare_model",
    } <= set(ran)
    assert all(ran.values())
    summary = result["summary"]  # the headline first (one section, at most 12 lines), then one row per arm
    assert (
        summary.startswith("## Headline: hybrid vs pure RL")
        and "| harmful-rate reduction (equal total compute) |" in summary
    )
    assert summary.splitlines().index("## Arms (measured languages)") <= 12 and summary.count("## Headline") == 1
    assert all(
        f"| {arm} | " in summary for arm in ("base", "sft_only", "pure_rl", "hybrid", "hybrid_grpo", "pure_rl_equal")
    )
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
        # the run's log has every stage's own log lines and none of the disassembly that Prefect's print patch used
        # to divert from dill (datasets hashing SFT's map function): see log_prints in flows/hybrid_train.py
        APILogWorker.drain_all(timeout=30)
        run_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        logs: list = []
        while not logs or len(logs) % 200 == 0:
            page = client.read_logs(log_filter=run_filter, limit=200, offset=len(logs))
            if not page:
                break
            logs += page
    messages = [log.message for log in logs]
    assert any("safealign: stage sft, resolved params" in m for m in messages)
    assert not [m for m in messages if "LOAD_GLOBAL" in m]
    names = {str(t.id): t.name for t in task_runs}
    upstream = {t.name: {names.get(str(i.id)) for i in t.task_inputs.get("wait_for", [])} for t in task_runs}
    assert upstream["validate"] == set()
    assert {"validate", "prepare_model"} <= upstream["sft"] and "mlflow-start-parent" not in upstream["sft"]
    assert "sft" in upstream["ppo@hybrid"] and "reward" in upstream["ppo@hybrid"]
    assert "cost" in upstream["report"]
    # the same cache and lock as a plain `dvc repro`
    assert "Data and pipelines are up to date" in dvc(repo, "repro").stdout
    parent = next(r for r in runs(repo) if r.info.run_id == result["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["launched_by"] == "prefect"
    children = [r for r in runs(repo) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {"sft", "ppo@hybrid", "evaluate@base", "cost"} <= {r.info.run_name for r in children}


def lock_outs(repo) -> dict[str, str]:
    """{output path: md5} of every stage's outputs in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for stage in lock.values() for o in stage.get("outs", [])}


def test_flow_outputs_match_a_plain_dvc_repro(harness, repo, tiny_repo):
    """The flow calls each stage's main in its worker process; a plain `dvc repro` (tiny_repo, same params) runs
    each in a fresh interpreter. Same weights, answers, verdicts, judge and curves: every output's DVC hash is the
    same, except the outputs that record CPU time (compute records, curves' CPU seconds, and the cost, headline and
    report that quote them), whose curves must still agree point by point on everything else."""
    flow, plain = lock_outs(repo), lock_outs(tiny_repo)
    assert set(flow) == set(plain)
    timed = ("metrics/compute/", "metrics/curves/", "metrics/cost.json", "metrics/headline.json", "reports/")
    timed += ("metrics/summary/headline.json", "metrics/plots/arms.csv")
    compared = {p for p in flow if not p.startswith(timed)}
    assert {"models/sft", "models/reward", "models/ppo/hybrid", "eval/hybrid/responses.jsonl"} <= compared
    assert {p: flow[p] for p in compared} == {p: plain[p] for p in compared}

    def untimed(path):
        points = json.loads(path.read_text())["points"]
        return [{k: v for k, v in p.items() if "cpu_s" not in k} for p in points]

    for curve in sorted((tiny_repo / "metrics/curves").glob("*.json")):
        assert untimed(repo / "metrics/curves" / curve.name) == untimed(curve)


def test_overrides_apply_for_one_run_and_are_recorded(harness, repo, monkeypatch):
    """An override reruns exactly the stages that read it (a price: cost, then the report that reads cost), is
    recorded on the parent run, and params.yaml is restored afterwards."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo / 'mlflow.db'}")
    before = (repo / "params.yaml").read_text()
    result = hybrid_train(overrides={"cost.usd_per_cpu_hour": 0.05}, repo_dir=str(repo))
    assert {k for k, v in result["stages_run"].items() if v} == {"cost", "report"}
    assert (repo / "params.yaml").read_text() == before  # restored
    parent = next(r for r in runs(repo) if r.info.run_id == result["mlflow_parent_run_id"])
    assert json.loads(parent.data.tags["overrides"]) == {"cost.usd_per_cpu_hour": 0.05}
    assert json.loads((repo / "metrics/cost.json").read_text())["prices"]["usd_per_cpu_hour"] == 0.05


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"evaluate.max_new_tokenz": 6}, "unknown key(s) evaluate.max_new_tokenz"),
        ({"sft.args.learning_rate": "fast"}, "sft.args.learning_rate: expected float, got str 'fast'"),
        ({"ppo.args.kl_coeff": 0.1}, "ppo.args has unknown PPOConfig field(s) ['kl_coeff']"),
    ],
)
def test_bad_override_fails_before_anything_runs(harness, repo, monkeypatch, overrides, message):
    """Rejected in the flow's first step: the reason is the run's state message, and nothing was touched (no
    tracked file, no MLflow run)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo / 'mlflow.db'}")
    before = {p: p.read_bytes() for p in [repo / "params.yaml", *sorted((repo / "metrics").rglob("*.json"))]}
    n_runs = len(runs(repo))
    state = hybrid_train(overrides=overrides, repo_dir=str(repo), return_state=True)
    assert state.is_failed() and message in state.message and state.message.startswith("rejected before anything ran")
    assert {p: p.read_bytes() for p in before} == before
    assert len(runs(repo)) == n_runs
