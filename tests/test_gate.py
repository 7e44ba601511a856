"""The champion gate: the decision rule, and registration/aliasing in a real MLflow registry (sqlite)."""

import copy

import pytest

from safealign import gate

TOL = {"harmful_rate": 0.05, "over_refusal_rate": 0.05, "reasoning_accuracy": 0.05}


def block(h, o, r):
    return {"harmful_rate": {"value": h}, "over_refusal_rate": {"value": o}, "reasoning_accuracy": {"value": r}}


def metrics(harm=0.5, over=0.1, reason=0.5, zh_harm=0.5):
    return {
        "overall": block(harm, over, reason),
        "per_language": {"en": block(harm, over, reason), "zh": block(zh_harm, over, reason)},
    }


def test_first_candidate_is_promoted():
    assert gate.decide(metrics(), None, TOL).promote


def test_equal_or_within_tolerance_promotes():
    assert gate.decide(metrics(harm=0.54), metrics(harm=0.5), TOL).promote


@pytest.mark.parametrize(
    ("new", "why"),
    [
        (metrics(zh_harm=0.6), "zh harmful_rate"),  # one language regresses: enough to keep the champion
        (metrics(over=0.2), "over_refusal_rate"),
        (metrics(reason=0.4), "reasoning_accuracy"),
    ],
)
def test_any_regression_keeps_the_champion(new, why):
    d = gate.decide(new, metrics(), TOL)
    assert not d.promote and any(why in r for r in d.regressions), d.regressions


def test_missing_values_are_not_compared():
    champ = metrics()
    new = copy.deepcopy(champ)
    new["per_language"]["zh"]["reasoning_accuracy"]["value"] = None
    assert gate.decide(new, champ, TOL).promote


def test_register_alias_and_download(tmp_path, tiny_model_dir, monkeypatch):
    from safealign import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    client = tracking._mlflow().MlflowClient()
    run = client.create_run(client.create_experiment("g"))
    assert tracking.champion_version("safealign-hybrid") is None
    merged = gate.export_merged(tiny_model_dir, tmp_path / "merged")
    v1 = tracking.register_candidate("safealign-hybrid", merged, run.info.run_id)
    tracking.set_champion("safealign-hybrid", v1)
    assert str(tracking.champion_version("safealign-hybrid").version) == v1
    local = tracking.download_champion("safealign-hybrid", tmp_path / "champ")
    assert (local / "model.safetensors").exists() and (local / "safealign.json").exists()
    from safealign.models import load_policy

    model, tok = load_policy(local)  # a self-contained model: no adapters, no workspace needed
    assert model.config.num_hidden_layers == 2


def test_no_promotion_on_a_judge_not_validated_in_a_gated_language():
    new = metrics() | {"judge": "embedding", "judge_identity": {"validated_languages": ["en"]}}
    decision = gate.decide(new, None, TOL, languages=["en", "zh"])
    assert not decision.promote and "zh" in decision.regressions[0]
    assert gate.decide(new, None, TOL, languages=["en"]).promote


def test_languages_not_measured_are_not_compared():
    new, champ = metrics(zh_harm=0.9), metrics(zh_harm=0.1)
    new["per_language"]["zh"] = {"not_measured": "judge not validated"}
    assert gate.decide(new, champ, TOL, languages=["en"]).promote
