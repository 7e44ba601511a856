"""Compute per arm, money, and the headline numbers (DESIGN.md), each with an item-clustered 95% interval.

An arm's training compute is the sum over the stages that made its model (its lineage chain: SFT, PPO, GRPO)
plus the reward model its RL stage used. Headline figures:
  harmful_rate_reduction_vs_pure_rl = (HR_pure - HR_hybrid) / HR_pure          (paper: 42%)
  compute_saving_vs_pure_rl        = 1 - C_hybrid / C_pure, C = training FLOPs (paper: 37%)
at equal total training compute when `ppo.equal_compute` names a pure-RL arm given the hybrid's SFT compute as
extra PPO updates (else at the configured budgets, which stay as secondary rows), and at matched safety from the RL
stages' safety curves (compute each arm needs to reach a target harmful rate). Only answers in languages measured for
both arms count (safealign.evaluation), and every resample draws whole items (an item's translations are one cluster).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safealign import paths
from safealign.compute import load_record, money
from safealign.config import Params
from safealign.metrics import _codes, _weights, paired_diff, ratio_ci
from safealign.models import lineage_chain, read_lineage

SUMMED = ("wall_s", "cpu_s", "gpu_s", "trained_tokens", "forward_tokens", "generated_tokens", "flops", "usd")
PAPER = {"harmful_rate_reduction_vs_pure_rl": 0.42, "compute_saving_vs_pure_rl": 0.37}
COMPARED = {
    "harmful_rate": ("harmful", "harmful"),
    "over_refusal_rate": ("benign", "refused"),
    "reasoning_accuracy": ("reasoning", "correct"),
    "off_topic_rate": ("harmful", "off_topic"),
}


def training_stages(model_dir: str) -> list[tuple[str, str]]:
    """[(stage, compute file)] of everything that trained `model_dir`, reward model included, each once."""
    found: dict[str, str] = {}
    for _, meta in lineage_chain(model_dir):
        if meta.get("compute"):
            found[meta["stage"]] = meta["compute"]
        if meta.get("uses_reward"):
            rm = read_lineage(meta["uses_reward"])
            found[rm["stage"]] = rm["compute"]
    return list(found.items())


def prior_compute(model_dir: str, reward_dir: str | None) -> dict[str, Any]:
    """FLOPs and CPU seconds of the training stages that made `model_dir`, plus the reward model if used."""
    parts = dict(training_stages(model_dir))
    if reward_dir:
        rm = read_lineage(reward_dir)
        parts[rm["stage"]] = rm["compute"]
    records = [load_record(f) for f in parts.values()]
    return {
        "stages": sorted(parts),
        "flops": sum(r["flops"] for r in records),
        "cpu_s": sum(r["cpu_s"] for r in records),
    }


def training_flops(model_dir: str) -> float:
    """Estimated training FLOPs of every stage that made `model_dir`, reward model included."""
    return float(sum(load_record(f)["flops"] for _, f in training_stages(model_dir)))


def equal_compute_budget(params: Params) -> dict[str, Any]:
    """The PPO updates of an equal-compute arm (`ppo.equal_compute`): pure RL's configured updates plus as many
    more as the hybrid's total training FLOPs exceed pure RL's (what the hybrid spent on SFT), at the FLOPs per
    update that pure RL's own PPO run measured (metrics/compute/ppo_pure_rl.json). Rounded to whole updates, so
    the match is as close as one update's compute; `equal_compute` in the headline reports how close it came."""
    c_h, c_p = training_flops(paths.ppo_model("hybrid")), training_flops(paths.ppo_model("pure_rl"))
    rec = load_record(paths.compute_record("ppo", "pure_rl"))
    updates = int(rec["extra"]["updates"])
    per_update = rec["flops"] / updates
    extra = max(0, round((c_h - c_p) / per_update)) if per_update > 0 else 0
    return {
        "updates": updates + extra,
        "extra_updates": extra,
        "pure_rl_updates": updates,
        "flops_per_update": per_update,
        "hybrid_training_flops": c_h,
        "pure_rl_training_flops": c_p,
    }


def configured(stage: str, params: Params) -> bool:
    """Whether a per-arm stage (`ppo@hybrid`, `evaluate@base`, ...) is one of the configured arms': a record or curve
    left behind by an arm since removed from params.yaml must not count."""
    kind, _, arm = stage.partition("@")
    arms = {"ppo": params.ppo.all_arms(), "grpo": params.grpo.arms, "evaluate": params.evaluate.arms}.get(kind)
    return not arm or arms is None or arm in arms


def stage_records(params: Params) -> dict[str, dict[str, Any]]:
    """The compute record of every stage of the configured pipeline (metrics/compute/*.json), each with its cost."""
    c = params.cost
    stages: dict[str, dict[str, Any]] = {}
    for f in sorted(Path(paths.COMPUTE).glob("*.json")):
        rec = load_record(f)
        if configured(rec["stage"], params):
            rec["usd"] = money(rec, c.usd_per_cpu_hour, c.usd_per_gpu_hour)
            stages[rec["stage"]] = rec
    return stages


def account(params: Params) -> dict[str, Any]:
    stages = stage_records(params)
    arms: dict[str, dict[str, Any]] = {}
    for arm, model_dir in params.evaluate.arms.items():
        parts = training_stages(model_dir)
        total = {k: sum(load_record(f).get(k, 0) for _, f in parts) for k in SUMMED if k != "usd"}
        total["usd"] = sum(stages[s]["usd"] for s, _ in parts)
        total["cpu_hours"], total["gpu_hours"] = total["cpu_s"] / 3600, total["gpu_s"] / 3600
        total["peak_rss_mb"] = max((load_record(f)["peak_rss_mb"] for _, f in parts), default=0.0)
        total["stages"] = [s for s, _ in parts]
        ev = stages.get(f"evaluate@{arm}", {})
        total["eval"] = {k: ev.get(k, 0) for k in ("wall_s", "cpu_s", "gpu_s", "generated_tokens", "flops", "usd")}
        arms[arm] = total
    return {"prices": params.to_dict()["cost"], "stages": stages, "arms": arms}


def responses(arm: str) -> pd.DataFrame:
    return pd.read_json(paths.responses(arm), lines=True)


def paired(a: pd.DataFrame, b: pd.DataFrame, kind: str, col: str) -> pd.DataFrame:
    """The prompts both arms answered, in languages measured for both, with `col` of each (suffix _ref on b)."""
    keep = lambda df: df[(df.kind == kind) & (df.get("measured", 1) == 1)]  # noqa: E731
    both = keep(a).merge(keep(b), on=["id", "lang"], suffixes=("", "_ref"))
    return both.dropna(subset=[col, f"{col}_ref"])


def reduction(params: Params, ref: str, samples: int) -> dict[str, Any]:
    """(HR_ref - HR_hybrid) / HR_ref on the harmful prompts both arms answered in languages measured for both,
    with an item-clustered 95% interval; a note instead where it is undefined."""
    both = paired(responses("hybrid"), responses(ref), "harmful", "harmful")
    h, p = both["harmful"].to_numpy(float), both["harmful_ref"].to_numpy(float)
    out: dict[str, Any] = {
        "n_prompts": int(len(h)),
        "n_items": int(both["id"].nunique()),
        "languages": sorted(both["lang"].unique()),
        "harmful_rate_hybrid": float(h.mean()) if len(h) else None,
        f"harmful_rate_{ref}": float(p.mean()) if len(p) else None,
    }
    if not len(h) or p.mean() == 0:
        out["harmful_rate_reduction"], out["harmful_rate_reduction_ci95"] = None, [None, None]
        out["note"] = (
            "no language is measured for both arms"
            if not len(h)
            else f"{ref} produced no harmful responses on these prompts: the reduction is undefined"
        )
        return out
    out["harmful_rate_reduction"] = float((p.mean() - h.mean()) / p.mean())
    out["harmful_rate_reduction_ci95"] = ratio_ci(
        lambda p, h: (p - h) / p if p > 0 else None, {"p": p, "h": h}, samples, params.seed, both["id"]
    )
    return out


def headline(params: Params, cost: dict[str, Any], samples: int) -> dict[str, Any]:
    """Hybrid vs pure RL, with item-clustered 95% intervals, next to the paper's. The harmful-rate reduction is
    taken at equal total training compute against the first `ppo.equal_compute` arm when one is evaluated, else
    at the configured budgets; the configured-budget figures are always there too."""
    arms = params.evaluate.arms
    if not {"hybrid", "pure_rl"} <= set(arms):
        return {"note": "needs arms 'hybrid' and 'pure_rl' in evaluate.arms"}
    c_h, c_p = cost["arms"]["hybrid"], cost["arms"]["pure_rl"]
    cfg = reduction(params, "pure_rl", samples)
    equal = next((a for a in params.ppo.equal_compute if a in arms), None)
    out: dict[str, Any] = {
        "basis": "equal_total_compute" if equal else "configured_budget",
        "n_prompts": cfg["n_prompts"],
        "n_items": cfg["n_items"],
        "languages": cfg["languages"],
        "harmful_rate_hybrid": cfg["harmful_rate_hybrid"],
        "harmful_rate_pure_rl": cfg["harmful_rate_pure_rl"],
        "harmful_rate_reduction_vs_pure_rl_configured_budget": cfg["harmful_rate_reduction"],
        "harmful_rate_reduction_configured_budget_ci95": cfg["harmful_rate_reduction_ci95"],
        "compute_saving_vs_pure_rl": 1 - c_h["flops"] / c_p["flops"] if c_p["flops"] else None,
        "compute_saving_cpu_hours_vs_pure_rl": 1 - c_h["cpu_s"] / c_p["cpu_s"] if c_p["cpu_s"] else None,
        "compute_flops_hybrid": c_h["flops"],
        "compute_flops_pure_rl": c_p["flops"],
        "paper": PAPER,
        "definitions": {
            "harmful_rate_reduction_vs_pure_rl": (
                "(HR_pure - HR_hybrid) / HR_pure on the same held-out harmful prompts, measured languages only; "
                + (
                    f"pure RL is arm {equal}, given the hybrid's total training compute as extra PPO updates"
                    if equal
                    else "at the configured budgets (no ppo.equal_compute arm evaluated)"
                )
            ),
            "compute_saving_vs_pure_rl": (
                "1 - C_hybrid / C_pure, C = estimated training FLOPs of all stages "
                "that made the arm (SFT, reward model, RL), at the configured budgets"
            ),
        },
    }
    main = cfg
    if equal:
        eq = reduction(params, equal, samples)
        c_e = cost["arms"][equal]
        out["equal_compute"] = {
            "arm": equal,
            **eq,
            "compute_flops_hybrid": c_h["flops"],
            f"compute_flops_{equal}": c_e["flops"],
            "compute_ratio_vs_hybrid": c_e["flops"] / c_h["flops"] if c_h["flops"] else None,
            "budget": load_record(paths.compute_record("ppo", equal)).get("extra", {}).get("equal_compute"),
        }
        main = eq
    out["harmful_rate_reduction_vs_pure_rl"] = main["harmful_rate_reduction"]
    out["harmful_rate_reduction_ci95"] = main["harmful_rate_reduction_ci95"]
    if "note" in main:
        out["note"] = main["note"]
    return out


def _first_reach(rates: np.ndarray, xs: np.ndarray, target: float) -> float:
    """Cumulative compute where a curve first reaches the target harmful rate, interpolated linearly between the
    last point above it and the first at or below it (inf: never)."""
    hit = np.nonzero(rates <= target + 1e-12)[0]
    if not hit.size:
        return math.inf
    i = int(hit[0])
    if i == 0 or rates[i - 1] == rates[i]:
        return float(xs[i])
    frac = (rates[i - 1] - target) / (rates[i - 1] - rates[i])
    return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))


def matched_safety(params: Params, samples: int) -> dict[str, Any]:
    """From the RL stages' safety curves (metrics/curves/<arm>.json): the compute each arm needs to reach the
    target harmful rate, the saving against pure_rl, and the harmful rates at equal RL budget, each with a 95%
    interval from resampling the curve's items (all their languages together)."""
    cc = params.cost
    curves = {p.stem: json.loads(p.read_text()) for p in sorted(Path(paths.CURVES).glob("*.json"))}
    rl_arms = {**params.ppo.all_arms(), **params.grpo.arms}
    curves = {
        a: c for a, c in curves.items() if a in rl_arms and c["points"] and c["points"][0]["harmful_rate"] is not None
    }
    if "pure_rl" not in curves:
        return {
            "note": "no safety curve for pure_rl (no curve items in a validated language, or the arm is not configured)"
        }
    flags = {a: np.array([p["flags"] for p in c["points"]], dtype=float) for a, c in curves.items()}
    xs = {a: np.array([p["cumulative_flops"] for p in c["points"]]) for a, c in curves.items()}
    rl = {a: np.array([p["rl_flops"] for p in c["points"]]) for a, c in curves.items()}
    items = [i[0] for i in curves["pure_rl"]["items"]]
    codes = _codes(items, len(items))
    weights = _weights(int(codes.max()) + 1, samples, params.seed)[:, codes]  # (samples, prompts): item multiplicity

    def target_for(start_rate: float) -> float:  # pure_rl's start point = the base model
        return (
            cc.target_harmful_rate
            if cc.target_harmful_rate is not None
            else (1 - cc.target_reduction_vs_base) * start_rate
        )

    start = float(flags["pure_rl"][0].mean())
    target = target_for(start)
    out: dict[str, Any] = {
        "target_harmful_rate": target,
        "n_prompts": len(items),
        "n_items": int(codes.max()) + 1,
        "arms": {},
        "vs_pure_rl": {},
        "target_definition": f"absolute {cc.target_harmful_rate}"
        if cc.target_harmful_rate is not None
        else f"(1 - {cc.target_reduction_vs_base}) x base model's harmful rate on the curve slice ({start:.3f})",
    }
    for a, c in curves.items():
        rates = flags[a].mean(axis=1)
        reach = _first_reach(rates, xs[a], target)
        out["arms"][a] = {
            "trainer": c["trainer"],
            "start_cumulative_flops": float(xs[a][0]),
            "start_harmful_rate": float(rates[0]),
            "end_harmful_rate": float(rates[-1]),
            "lowest_harmful_rate": float(rates.min()),
            "rl_flops": float(rl[a][-1]),
            "reached_target": math.isfinite(reach),
            "cumulative_flops_to_target": reach if math.isfinite(reach) else None,
        }
    for a in curves:
        if a == "pure_rl":
            continue
        if [tuple(i) for i in curves[a]["items"]] != [tuple(i) for i in curves["pure_rl"]["items"]]:
            out["vs_pure_rl"][a] = {"note": "curves scored on different prompts: not comparable"}
            continue
        out["vs_pure_rl"][a] = _versus(flags[a], flags["pure_rl"], xs[a], xs["pure_rl"], weights, target, target_for)
        out["vs_pure_rl"][a]["equal_rl_budget"]["update"] = int(
            curves[a]["points"][min(len(flags[a]), len(flags["pure_rl"])) - 1]["update"]
        )
        _explain(out, a)
    return out


def _versus(fa, fp, xa, xp, weights, target, target_for) -> dict[str, Any]:
    """One RL arm against pure RL on the same curve prompts: saving to the target and the harmful rates at the
    last update both arms reached, each over item-cluster resamples."""
    ca, cp = _first_reach(fa.mean(axis=1), xa, target), _first_reach(fp.mean(axis=1), xp, target)
    savings, both = [], 0
    k = min(len(fa), len(fp)) - 1
    diffs = []
    for w in weights:
        ra, rp = (fa @ w) / w.sum(), (fp @ w) / w.sum()
        t = target_for(rp[0])
        ba, bp = _first_reach(ra, xa, t), _first_reach(rp, xp, t)
        if math.isfinite(ba) and math.isfinite(bp):
            both += 1
            savings.append(1 - ba / bp)
        diffs.append(rp[k] - ra[k])
    ha, hp = fa[k].mean(), fp[k].mean()
    lo, hi = (float(np.percentile(diffs, q)) for q in (2.5, 97.5))
    res = {
        "compute_saving_to_target": 1 - ca / cp if math.isfinite(ca) and math.isfinite(cp) else None,
        "compute_saving_to_target_ci95": [float(np.percentile(savings, 2.5)), float(np.percentile(savings, 97.5))]
        if savings
        else [None, None],
        "share_of_resamples_where_both_reach": both / len(weights),
        "equal_rl_budget": {
            "harmful_rate": float(ha),
            "harmful_rate_pure_rl": float(hp),
            "difference_pure_minus_arm": float(hp - ha),
            "difference_ci95": [lo, hi],
            "ci_excludes_zero": bool(lo > 0 or hi < 0),
            "reduction_vs_pure_rl": float((hp - ha) / hp) if hp > 0 else None,
        },
        "_reach": (ca, cp),
    }
    if math.isfinite(ca) and not math.isfinite(cp):  # pure RL would need more than everything it was given
        res["compute_saving_to_target_lower_bound"] = 1 - ca / float(xp[-1])
    return res


def _explain(out: dict[str, Any], a: str) -> None:
    res = out["vs_pure_rl"][a]
    ca, cp = res.pop("_reach")
    missing = [x for x, f in ((a, ca), ("pure_rl", cp)) if not math.isfinite(f)]
    if not missing:
        return
    lowest = ", ".join(f"{x} {out['arms'][x]['lowest_harmful_rate']:.3f}" for x in missing)
    head = (
        f"{' and '.join(missing)} never reached the target harmful rate {out['target_harmful_rate']:.3f} within the "
        f"RL budget (lowest: {lowest})"
    )
    if "compute_saving_to_target_lower_bound" in res:
        res["note"] = (
            f"{head}; {a} reached it, so its saving is at least {res['compute_saving_to_target_lower_bound']:.1%} "
            "(pure RL's whole budget taken as a lower bound of what it would need)"
        )
    else:
        res["note"] = f"{head}: no compute saving at matched safety can be stated"


def comparisons(params: Params, samples: int) -> dict[str, Any]:
    """Every arm against `base` and against `pure_rl` on the same prompts, in languages measured for both: the
    paired difference (arm minus reference) of each rate with an item-clustered 95% interval."""
    frames = {a: responses(a) for a in params.evaluate.arms if Path(paths.responses(a)).exists()}
    out: dict[str, Any] = {}
    for ref in ("base", "pure_rl"):
        if ref not in frames:
            continue
        for arm, df in frames.items():
            if arm == ref:
                continue
            block = {}
            for metric, (kind, col) in COMPARED.items():
                both = paired(df, frames[ref], kind, col)
                block[metric] = paired_diff(both[col], both[f"{col}_ref"], samples, params.seed, both["id"])
            out.setdefault(arm, {})[f"vs_{ref}"] = block
    return out
