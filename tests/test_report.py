"""The report's wording where there is nothing to draw or the stage records are partial (no pipeline run needed)."""

from __future__ import annotations

from safealign.report import final_kl, render_html, training_signals


def _doc(**curves):
    return {
        "eval": {},
        "cost": {"arms": {}, "stages": {}},
        "headline": {},
        "curves": curves,
        "detection": None,
        "judge": None,
        "reward": None,
    }


def test_missing_safety_curves_say_why():
    unvalidated = {"arm": "hybrid", "judge": "embedding", "items": [], "points": []}
    disabled = {"arm": "hybrid", "judge": None, "items": [], "points": []}
    assert "none is" in render_html(_doc(hybrid=unvalidated))  # judge loaded, no validated language
    assert "curve.items_per_language is 0" in render_html(_doc(hybrid=disabled))
    assert "no RL arm wrote one" in render_html(_doc())


def test_training_signals_read_ppo_and_grpo_records():
    d = _doc()
    d["cost"]["stages"] = {
        "sft": {"extra": {"steps": 4}},
        "ppo@pure_rl": {
            "extra": {
                "updates": 2,
                "history": [
                    {"update": 1, "objective/scores": 1.0, "objective/kl": 0.0},
                    {"update": 2, "objective/scores": 2.5, "objective/kl": 0.25},
                ],
            }
        },
        "grpo@g": {
            "extra": {
                "steps": 1,
                "history": [{"step": 1, "reward": -1.0, "kl": 0.01}],
            }
        },
    }
    d["reward"] = {"pairwise_accuracy": {"overall": {"value": 0.75, "n": 8, "clusters": 2, "ci95": [0.5, 1.0]}}}
    title, header, rows, note = training_signals(d)
    assert [r[:2] for r in rows] == [["g", "GRPO"], ["pure_rl", "PPO"]]  # SFT is not an RL stage
    assert rows[1][2:] == ["2", "1.00", "2.50", "+1.50", "1.00 2.50", "0.250"]
    assert rows[0][-1] == "0.010" and "0.750 [0.500, 1.000] n=8, 2 item clusters" in note
    assert [final_kl(d, a) for a in ("pure_rl", "g", "sft_only")] == [0.25, 0.01, None]
    assert "n/a" in training_signals(_doc())[3]  # no reward model record: said, not invented
