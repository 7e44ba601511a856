"""The tiny experiment end to end through `dvc repro`: outputs, metrics, MLflow runs, caching, bad data."""

import json
import time

import mlflow
import pytest
import yaml

from .conftest import dvc

ARMS = ("base", "sft_only", "pure_rl", "hybrid", "hybrid_grpo", "pure_rl_equal")


def load(repo, path):
    return json.loads((repo / path).read_text())


def test_outputs_and_metrics(tiny_repo):
    for arm in ARMS:
        m = load(tiny_repo, f"metrics/eval/{arm}.json")
        for metric in (
            "harmful_rate",
            "off_topic_rate",
            "over_refusal_rate",
            "language_consistency",
            "reasoning_accuracy",
        ):
            block = m["overall"][metric]
            assert block["n"] > 0 and set(block) == {"value", "n", "clusters", "ci95"}, (arm, metric)
            assert block["clusters"] < block["n"] or metric == "reasoning_accuracy", (arm, metric)  # items, not answers
        assert set(m["per_language"]) == {"en", "zh"}
        assert (tiny_repo / f"eval/{arm}/responses.jsonl").exists()
    # lineage: hybrid = base -> sft adapter -> ppo adapter; pure_rl = base -> ppo adapter
    assert load(tiny_repo, "models/ppo/hybrid/safealign.json")["parent"] == "models/sft"
    assert load(tiny_repo, "models/ppo/pure_rl/safealign.json")["parent"] == "models/base"
    assert (tiny_repo / "models/sft/adapter_model.safetensors").exists()
    m = load(tiny_repo, "metrics/eval/hybrid.json")
    detection = load(tiny_repo, "metrics/detection.json")
    assert m["judge"] == detection["best_judge"] and m["measured_languages"] == ["en", "zh"]
    assert m["judge_identity"]["validated_languages"] == detection["validated_by_judge"][m["judge"]]
    assert {"harmful_rate", "untrained", "trained"} <= set(m["cross_lingual_gap"])
    assert {"refuse_then_comply_rate", "rm_safe_judge_harmful_rate", "mean_response_chars"} <= set(m["reward_hacking"])
    # the reward model scores exactly the rows the indicators read: harmful prompts in measured languages
    rows = [json.loads(x) for x in (tiny_repo / "eval/hybrid/responses.jsonl").read_text().splitlines()]
    scored = [r for r in rows if r["reward"] is not None]
    assert scored and len(scored) < len(rows)
    assert all((r["kind"] == "harmful" and r["measured"] == 1) == (r["reward"] is not None) for r in rows)


def test_detection_table(tiny_repo):
    d = load(tiny_repo, "metrics/detection.json")
    assert d["best_judge"] in {"lexicon", "classifier", "embedding"}
    assert set(d["judge_test"]) == {"lexicon", "classifier", "embedding", "reward_model"}
    assert d["rows"]["train"] > 0 and d["rows"]["dev"] > 0 and d["rows"]["test"] > 0
    j = load(tiny_repo, "metrics/judge.json")
    assert j["chosen"] == d["best_judge"] and set(j["dev"]) == {"lexicon", "classifier", "embedding"}
    for name, rep in j["test"].items():
        assert set(rep["per_language"]) == {"en", "zh"}, name
        assert {"accuracy", "f1", "fpr", "confusion"} <= set(rep["per_language"]["zh"])
    plot = (tiny_repo / "metrics/plots/detection.csv").read_text().splitlines()
    assert plot[0].startswith("judge,lang,validated,") and len(plot) == 1 + 2  # the chosen judge, a bar per language
    assert (tiny_repo / "models/detector/classifier.npz").exists() and (
        tiny_repo / "models/detector/embedding.npz"
    ).exists()
    assert load(tiny_repo, "models/detector/judge.json")["judge"] == d["best_judge"]
    assert not list(tiny_repo.glob("models/**/*.bin")) or all(
        p.name == "training_args.bin" for p in tiny_repo.glob("models/**/*.bin")
    )


def test_cost_and_headline(tiny_repo):
    cost = load(tiny_repo, "metrics/cost.json")
    assert cost["arms"]["base"]["flops"] == 0 and cost["arms"]["base"]["stages"] == []
    assert cost["arms"]["sft_only"]["stages"] == ["sft"]
    assert sorted(cost["arms"]["hybrid"]["stages"]) == ["ppo@hybrid", "reward", "sft"]
    assert sorted(cost["arms"]["pure_rl"]["stages"]) == ["ppo@pure_rl", "reward"]
    assert sorted(cost["arms"]["hybrid_grpo"]["stages"]) == ["grpo@hybrid_grpo", "reward", "sft"]  # RM as safety reward
    for arm in ("sft_only", "pure_rl", "hybrid", "hybrid_grpo"):
        a = cost["arms"][arm]
        assert a["flops"] > 0 and a["cpu_hours"] > 0 and a["trained_tokens"] > 0 and a["usd"] > 0, arm
    assert cost["arms"]["pure_rl"]["generated_tokens"] > 0  # PPO rollouts
    head = load(tiny_repo, "metrics/headline.json")
    assert {"harmful_rate_reduction_vs_pure_rl", "compute_saving_vs_pure_rl", "paper"} <= set(head)
    expected = 1 - cost["arms"]["hybrid"]["flops"] / cost["arms"]["pure_rl"]["flops"]
    assert head["compute_saving_vs_pure_rl"] == pytest.approx(expected)
    ms = head["matched_safety"]
    assert set(ms["arms"]) == {"pure_rl", "hybrid", "hybrid_grpo", "pure_rl_equal"} and set(ms["vs_pure_rl"]) == {
        "hybrid",
        "hybrid_grpo",
        "pure_rl_equal",
    }
    for arm, res in ms["vs_pure_rl"].items():
        reached = ms["arms"][arm]["reached_target"] and ms["arms"]["pure_rl"]["reached_target"]
        assert (res["compute_saving_to_target"] is not None) == reached, arm
        assert reached or "never reached the target" in res["note"]
        assert len(res["equal_rl_budget"]["difference_ci95"]) == 2


def test_equal_compute_arm_gets_the_hybrids_compute(tiny_repo):
    """ppo_equal@pure_rl_equal: pure RL from the base model with extra PPO updates for what the hybrid spent on SFT,
    so its training FLOPs land within one update of the hybrid's; the headline's reduction is taken against it."""
    cost = load(tiny_repo, "metrics/cost.json")["arms"]
    rec = load(tiny_repo, "metrics/compute/ppo_pure_rl_equal.json")
    budget = rec["extra"]["equal_compute"]
    pure = load(tiny_repo, "metrics/compute/ppo_pure_rl.json")["extra"]["updates"]
    assert sorted(cost["pure_rl_equal"]["stages"]) == ["ppo@pure_rl_equal", "reward"]
    assert budget["pure_rl_updates"] == pure and budget["extra_updates"] >= 1
    assert rec["extra"]["updates"] == budget["updates"] == pure + budget["extra_updates"]
    assert budget["hybrid_training_flops"] == pytest.approx(cost["hybrid"]["flops"])
    assert budget["pure_rl_training_flops"] == pytest.approx(cost["pure_rl"]["flops"])
    assert abs(cost["pure_rl_equal"]["flops"] - cost["hybrid"]["flops"]) <= budget["flops_per_update"]
    gap = lambda arm: abs(cost[arm]["flops"] - cost["hybrid"]["flops"])  # noqa: E731
    assert gap("pure_rl_equal") < gap("pure_rl")  # the extra updates close the gap that SFT opened
    head = load(tiny_repo, "metrics/headline.json")
    eq = head["equal_compute"]
    assert head["basis"] == "equal_total_compute" and eq["arm"] == "pure_rl_equal"
    assert head["harmful_rate_reduction_vs_pure_rl"] == eq["harmful_rate_reduction"]
    assert eq["compute_ratio_vs_hybrid"] == pytest.approx(cost["pure_rl_equal"]["flops"] / cost["hybrid"]["flops"])
    assert "harmful_rate_reduction_vs_pure_rl_configured_budget" in head
    assert load(tiny_repo, "models/ppo/pure_rl_equal/safealign.json")["parent"] == "models/base"


def test_safety_curves(tiny_repo):
    """Every RL arm has a curve: start point plus one per checkpoint segment, on the same prompts, compute rising;
    the hybrid's curve starts after its SFT compute, and scoring the curve is not counted as training."""
    curves = {a: load(tiny_repo, f"metrics/curves/{a}.json") for a in ("pure_rl", "hybrid", "hybrid_grpo")}
    for arm, c in curves.items():
        updates = [p["update"] for p in c["points"]]
        assert updates[0] == 0 and updates == sorted(set(updates)) and len(updates) >= 3, (arm, updates)
        xs = [p["cumulative_flops"] for p in c["points"]]
        assert xs == sorted(xs) and xs[-1] > xs[0], arm
        assert all(len(p["flags"]) == p["n"] == len(c["items"]) > 0 for p in c["points"])
        assert c["items"] == curves["pure_rl"]["items"]
    assert curves["hybrid"]["prior"]["stages"] == ["reward", "sft"] and curves["pure_rl"]["prior"]["stages"] == [
        "reward"
    ]
    assert curves["hybrid_grpo"]["prior"]["stages"] == ["reward", "sft"]
    categories = {i.rsplit("-", 1)[0] for i, _ in curves["pure_rl"]["items"]}
    assert len(categories) == 4  # every harm category of the fixture
    assert curves["hybrid"]["points"][0]["cumulative_flops"] > curves["pure_rl"]["points"][0]["cumulative_flops"]
    ppo = load(tiny_repo, "metrics/compute/ppo_hybrid.json")
    assert ppo["extra"]["excluded_measurement"]["wall_s"] > 0
    assert ppo["flops"] == pytest.approx(curves["hybrid"]["points"][-1]["rl_flops"], rel=0.01)
    assert (tiny_repo / "metrics/plots/curve_hybrid.csv").read_text().startswith("arm,update,cumulative_tflops")


def test_mlflow_parent_with_nested_stage_runs(tiny_repo):
    mlflow.set_tracking_uri(f"sqlite:///{tiny_repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["safealign"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    names = {r.info.run_name for r in children}
    assert {
        "validate",
        "prepare_model",
        "sft",
        "reward",
        "detect",
        "ppo@pure_rl",
        "ppo@hybrid",
        "cost",
    } <= names
    assert {f"evaluate@{a}" for a in ARMS} <= names
    ev = next(r for r in children if r.info.run_name == "evaluate@hybrid")
    assert "eval/overall/harmful_rate" in ev.data.metrics and "eval/zh/language_consistency" in ev.data.metrics
    assert ev.data.params["evaluate.arms.hybrid"] == "models/ppo/hybrid"
    sft = next(r for r in children if r.info.run_name == "sft")
    assert "loss" in sft.data.metrics  # training curve from transformers' MLflowCallback
    assert "git_commit" in sft.data.tags and "data_version" in sft.data.tags
    client = mlflow.MlflowClient()
    assert any(a.path == "model" for a in client.list_artifacts(sft.info.run_id))
    assert "compute_saving_vs_pure_rl" in parents[0].data.metrics
    assert "report.html" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}


def test_report(tiny_repo):
    page = (tiny_repo / "reports/report.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page  # self-contained, opens from disk
    assert page.count("<svg") >= 3  # curves, harmful and over-refusal bars
    for arm in ARMS:
        assert f"<td>{arm}</td>" in page
    md = (tiny_repo / "reports/report.md").read_text()
    assert "## Headline: hybrid vs pure RL" in md and "| 42% |" in md and "## Arm minus reference" in md
    # judge-free training signals: every RL stage's reward per update, from its compute record
    signals = md.split("## Training signals")[1].split("\n## ")[0]
    cost = json.loads((tiny_repo / "metrics/cost.json").read_text())
    for stage, rec in cost["stages"].items():
        kind, _, arm = stage.partition("@")
        if kind in ("ppo", "grpo"):
            first = rec["extra"]["first_score" if kind == "ppo" else "first_reward"]
            assert f"| {arm} | {kind.upper()} |" in signals and f"{first:.2f}" in signals, stage
    assert "held-out pairwise accuracy" in signals and "n/a" not in signals.split("accuracy")[-1]
    arms_plot = (tiny_repo / "metrics/plots/arms.csv").read_text().splitlines()
    assert arms_plot[0].startswith("arm,measured_languages,harmful_rate") and len(arms_plot) == 1 + len(
        ARMS
    )  # a bar per arm


def test_noop_repro_is_fast_and_param_change_reruns_only_readers(tiny_repo):
    t = time.time()
    out = dvc(tiny_repo, "repro")
    assert "Data and pipelines are up to date" in out.stdout
    assert time.time() - t < 30  # seconds, not minutes (bench/ measures it properly)
    # evaluate.max_new_tokens is read by the evaluate stages only (cost reads their outputs)
    original = (tiny_repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["evaluate"]["max_new_tokens"] = 8
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(dvc(tiny_repo, "status", "--json").stdout)
    finally:  # the repository is shared by later tests
        (tiny_repo / "params.yaml").write_text(original)
    assert set(status) == {f"evaluate@{a}" for a in ARMS}, status  # not validate, sft, reward, ppo, cost


def test_bad_data_stops_before_training_and_keeps_every_output(tiny_repo, tmp_path):
    """After a good run, a bad row stops the next run in validate: every model and metric file is byte-identical
    afterwards (nothing good is lost or overwritten by a failed run)."""
    import shutil

    repo = tmp_path / "bad"
    shutil.copytree(tiny_repo, repo, symlinks=True)

    def snapshot() -> dict:
        files = [p for d in ("models", "metrics", "reports") for p in sorted((repo / d).rglob("*")) if p.is_file()]
        return {str(p.relative_to(repo)): p.read_bytes() for p in files}

    before = snapshot()
    assert any(k.startswith("models/ppo/") for k in before) and "metrics/eval/hybrid.json" in before
    path = repo / "data/benchmark/zh.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[4])
    row["lang"] = "xx"
    lines[4] = json.dumps(row, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n")
    out = dvc(repo, "repro", check=False)
    assert out.returncode != 0
    assert "zh.jsonl, row 5, field 'lang': lang must be 'zh'" in out.stdout + out.stderr
    after = snapshot()
    assert after.keys() == before.keys() and all(after[k] == before[k] for k in before)


def test_dvc_views_are_readable(tiny_repo):
    """`dvc metrics show` fits a terminal (the DVC metrics are the small summary files), the plots page renders
    offline (vega inline, no CDN), and the graph prints as mermaid."""
    shown = dvc(tiny_repo, "metrics", "show").stdout
    assert "metrics/summary/headline.json" in shown and "metrics/summary/eval_hybrid.json" in shown
    assert max(len(line) for line in shown.splitlines()) <= 180, shown
    out = dvc(tiny_repo, "plots", "show", "--out", "plots_page")
    assert out.returncode == 0, out.stderr
    page = (tiny_repo / "plots_page" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "vegaEmbed(" in page and "vega-lite 5.2.0" in page
    mermaid = dvc(tiny_repo, "dag", "--mermaid").stdout
    assert mermaid.startswith("flowchart") and "evaluate@hybrid" in mermaid


def test_mlflow_runs_carry_compute_and_log_params_once(tiny_repo):
    mlflow.set_tracking_uri(f"sqlite:///{tiny_repo / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("safealign")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # opens in the model-training view
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["safealign"], output_format="list")}
    for name in ("prepare_model", "sft", "reward", "detect", "ppo@hybrid", "grpo@hybrid_grpo", "evaluate@base"):
        assert {"compute/cpu_hours", "compute/usd", "compute/flops"} <= set(runs[name].data.metrics), name
    ppo = runs["ppo@hybrid"]
    # the stage logs its resolved params once; the segments' TrainingArguments (seed changes per segment) are not
    assert ppo.data.params["ppo.args.learning_rate"] and "adam_beta1" not in ppo.data.params
    assert "curve/harmful_rate" in ppo.data.metrics and ppo.info.status == "FINISHED"
    ev = runs["evaluate@hybrid"]
    assert ev.data.tags["judge"] and "judge/judge_test/accuracy" in ev.data.metrics
