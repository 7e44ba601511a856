"""Compute to matched safety from RL safety curves: the saving, its lower bound when pure RL never gets there."""

import json

import pytest

from safealign.accounting import matched_safety
from safealign.config import load_params as _load

from .conftest import ROOT


def load_params(overrides):
    return _load(ROOT / "params.yaml", overrides)


ITEMS = [[f"harm-x-{i:02d}", "en"] for i in range(10)]


def curve(arm: str, trainer: str, start_flops: float, step_flops: float, harmful_counts: list[int]) -> dict:
    points = []
    for k, h in enumerate(harmful_counts):
        flags = [1] * h + [0] * (10 - h)
        points.append(
            {
                "update": 2 * k,
                "rl_flops": k * step_flops,
                "rl_cpu_s": k,
                "cumulative_flops": start_flops + k * step_flops,
                "cumulative_cpu_s": k,
                "harmful_rate": h / 10,
                "n": 10,
                "flags": flags,
            }
        )
    return {"arm": arm, "trainer": trainer, "judge": "lexicon", "prior": {}, "items": ITEMS, "points": points}


def write(tmp_path, curves):
    (tmp_path / "metrics/curves").mkdir(parents=True)
    for c in curves:
        (tmp_path / "metrics/curves" / f"{c['arm']}.json").write_text(json.dumps(c))


def test_saving_when_both_reach_the_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # base harmful 10/10 -> target 0.8; pure RL gets there at its 3rd point (30 TFLOP), hybrid at its start (20)
    write(
        tmp_path, [curve("pure_rl", "ppo", 10.0, 10.0, [10, 9, 8, 7]), curve("hybrid", "ppo", 20.0, 10.0, [8, 7, 6, 5])]
    )
    params = load_params(overrides={"cost.target_reduction_vs_base": 0.2})
    ms = matched_safety(params, 200)
    assert ms["target_harmful_rate"] == pytest.approx(0.8)
    assert (
        ms["arms"]["pure_rl"]["cumulative_flops_to_target"] == 30.0
        and ms["arms"]["hybrid"]["cumulative_flops_to_target"] == 20.0
    )
    res = ms["vs_pure_rl"]["hybrid"]
    assert res["compute_saving_to_target"] == pytest.approx(1 - 20 / 30)
    assert res["equal_rl_budget"]["harmful_rate"] == 0.5 and res["equal_rl_budget"]["harmful_rate_pure_rl"] == 0.7
    assert "note" not in res


def test_lower_bound_when_pure_rl_never_reaches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        [curve("pure_rl", "ppo", 10.0, 10.0, [10, 10, 9, 9]), curve("hybrid", "ppo", 20.0, 10.0, [8, 7, 6, 5])],
    )
    ms = matched_safety(load_params(overrides={"cost.target_reduction_vs_base": 0.2}), 200)
    res = ms["vs_pure_rl"]["hybrid"]
    assert res["compute_saving_to_target"] is None and not ms["arms"]["pure_rl"]["reached_target"]
    assert res["compute_saving_to_target_lower_bound"] == pytest.approx(1 - 20 / 40)
    assert "pure_rl never reached the target" in res["note"] and "at least 50.0%" in res["note"]


def test_absolute_target_and_nobody_reaching(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, [curve("pure_rl", "ppo", 10.0, 10.0, [10, 10]), curve("hybrid", "ppo", 20.0, 10.0, [9, 9])])
    ms = matched_safety(load_params(overrides={"cost.target_harmful_rate": 0.1}), 100)
    res = ms["vs_pure_rl"]["hybrid"]
    assert ms["target_harmful_rate"] == 0.1 and res["compute_saving_to_target"] is None
    assert "no compute saving at matched safety can be stated" in res["note"]


def test_a_removed_arms_leftover_curve_and_compute_record_do_not_count(tmp_path, monkeypatch):
    """An arm dropped from params.yaml leaves its files behind: they must not enter the comparison or the cost."""
    from safealign.accounting import stage_records

    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        [
            curve("pure_rl", "ppo", 10.0, 10.0, [10, 9, 8, 7]),
            curve("hybrid", "ppo", 20.0, 10.0, [8, 7, 6, 5]),
            curve("old_arm", "grpo", 20.0, 10.0, [8, 2, 1, 0]),
        ],
    )
    params = load_params(overrides={"cost.target_reduction_vs_base": 0.2, "grpo.arms": {}})
    assert set(matched_safety(params, 200)["arms"]) == {"pure_rl", "hybrid"}
    (tmp_path / "metrics/compute").mkdir(parents=True)
    for stage in ("ppo@hybrid", "grpo@old_arm", "evaluate@old_arm", "evaluate@base"):
        rec = {"stage": stage, "device": "cpu", "wall_s": 1.0, "cpu_s": 1.0, "gpu_s": 0.0, "flops": 1.0}
        (tmp_path / "metrics/compute" / f"{stage.replace('@', '_')}.json").write_text(json.dumps(rec))
    assert set(stage_records(params)) == {"ppo@hybrid", "evaluate@base"}
