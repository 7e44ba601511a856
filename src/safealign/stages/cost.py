"""Stage cost: compute per stage and per arm, money at the prices in params, and the headline numbers.

An arm's training compute is the sum over the stages that made its model (its lineage chain: SFT, PPO) plus the
reward model its RL stage used. Headline figures as DESIGN.md defines them:
  harmful_rate_reduction_vs_pure_rl = (HR_pure - HR_hybrid) / HR_pure          (paper: 42%)
  compute_saving_vs_pure_rl        = 1 - C_hybrid / C_pure, C = training FLOPs (paper: 37%)
with 95% intervals from a paired bootstrap over the evaluation prompts (both arms answer the same prompts).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safealign.compute import load_record, money
from safealign.config import Params
from safealign.models import lineage_chain, read_lineage
from safealign.stages.common import run_main, setup, write_json
from safealign.tracking import log_dict_metrics, resolve_parent, stage_run

log = logging.getLogger(__name__)
SUMMED = ("wall_s", "cpu_s", "gpu_s", "trained_tokens", "forward_tokens", "generated_tokens", "flops", "usd")
PAPER = {"harmful_rate_reduction_vs_pure_rl": 0.42, "compute_saving_vs_pure_rl": 0.37}


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


def account(params: Params) -> dict[str, Any]:
    c = params.cost
    stages: dict[str, dict[str, Any]] = {}
    for f in sorted(Path("metrics/compute").glob("*.json")):
        rec = load_record(f)
        rec["usd"] = money(rec, c.usd_per_cpu_hour, c.usd_per_gpu_hour)
        stages[rec["stage"]] = rec
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


def headline(params: Params, cost: dict[str, Any], samples: int) -> dict[str, Any]:
    """The two headline numbers with paired-bootstrap 95% intervals, next to the paper's."""
    arms = params.evaluate.arms
    if not {"hybrid", "pure_rl"} <= set(arms):
        return {"note": "needs arms 'hybrid' and 'pure_rl' in evaluate.arms"}
    harm = {a: _harmful_flags(a) for a in ("hybrid", "pure_rl")}
    both = harm["hybrid"].join(harm["pure_rl"], lsuffix="_h", rsuffix="_p", how="inner")
    h, p = both["harmful_h"].to_numpy(float), both["harmful_p"].to_numpy(float)
    reduction = (p.mean() - h.mean()) / p.mean() if p.mean() > 0 else None
    rng = np.random.default_rng(params.seed)
    boots = []
    for _ in range(samples):
        i = rng.integers(0, len(h), len(h))
        if p[i].mean() > 0:
            boots.append((p[i].mean() - h[i].mean()) / p[i].mean())
    c_h, c_p = cost["arms"]["hybrid"], cost["arms"]["pure_rl"]
    out = {
        "harmful_rate_reduction_vs_pure_rl": reduction,
        "harmful_rate_reduction_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots else [None, None],
        "harmful_rate_hybrid": float(h.mean()),
        "harmful_rate_pure_rl": float(p.mean()),
        "n_prompts": int(len(h)),
        "compute_saving_vs_pure_rl": 1 - c_h["flops"] / c_p["flops"] if c_p["flops"] else None,
        "compute_saving_cpu_hours_vs_pure_rl": 1 - c_h["cpu_s"] / c_p["cpu_s"] if c_p["cpu_s"] else None,
        "compute_flops_hybrid": c_h["flops"],
        "compute_flops_pure_rl": c_p["flops"],
        "paper": PAPER,
        "definitions": {
            "harmful_rate_reduction_vs_pure_rl": "(HR_pure - HR_hybrid) / HR_pure on the same held-out harmful prompts",
            "compute_saving_vs_pure_rl": "1 - C_hybrid / C_pure, C = estimated training FLOPs of all stages that made the arm (SFT, reward model, PPO), at the configured budgets (not yet at matched safety)",
        },
    }  # fmt: skip
    if reduction is None:
        out["note"] = "pure_rl produced no harmful responses on these prompts: the reduction is undefined"
    return out


def _first_reach(flags: np.ndarray, xs: np.ndarray, target: float) -> float:
    """Cumulative compute of the first curve point whose harmful rate is at or below target (inf: never)."""
    hit = np.nonzero(flags.mean(axis=1) <= target + 1e-12)[0]
    return float(xs[hit[0]]) if hit.size else math.inf


def matched_safety(params: Params, samples: int) -> dict[str, Any]:
    """From the RL stages' safety curves (metrics/curves/<arm>.json): the compute each arm needs to reach the
    target harmful rate, the saving against pure_rl, and the harmful rates at equal RL budget, each with a 95%
    bootstrap interval over the curve prompts (every arm answers the same prompts at every point)."""
    cc = params.cost
    curves = {p.stem: json.loads(p.read_text()) for p in sorted(Path("metrics/curves").glob("*.json"))}
    curves = {a: c for a, c in curves.items() if c["points"] and c["points"][0]["harmful_rate"] is not None}
    if "pure_rl" not in curves:
        return {"note": "no safety curve for pure_rl (curve.items_per_language is 0, or the arm is not configured)"}
    flags = {a: np.array([p["flags"] for p in c["points"]], dtype=float) for a, c in curves.items()}
    xs = {a: np.array([p["cumulative_flops"] for p in c["points"]]) for a, c in curves.items()}
    rl = {a: np.array([p["rl_flops"] for p in c["points"]]) for a, c in curves.items()}
    def target_for(base_flags: np.ndarray) -> float:  # base_flags: pure_rl's start point = the base model
        return cc.target_harmful_rate if cc.target_harmful_rate is not None else (1 - cc.target_reduction_vs_base) * float(base_flags.mean())

    target = target_for(flags["pure_rl"][0])
    out: dict[str, Any] = {
        "target_harmful_rate": target, "n_prompts": int(flags["pure_rl"].shape[1]), "arms": {}, "vs_pure_rl": {},
        "target_definition": f"absolute {cc.target_harmful_rate}" if cc.target_harmful_rate is not None else
        f"(1 - {cc.target_reduction_vs_base}) x base model's harmful rate on the curve slice ({float(flags['pure_rl'][0].mean()):.3f})",
    }  # fmt: skip
    for a, c in curves.items():
        reach = _first_reach(flags[a], xs[a], target)
        rates = flags[a].mean(axis=1)
        out["arms"][a] = {
            "trainer": c["trainer"], "start_cumulative_flops": float(xs[a][0]), "start_harmful_rate": float(rates[0]),
            "end_harmful_rate": float(rates[-1]), "lowest_harmful_rate": float(rates.min()), "rl_flops": float(rl[a][-1]),
            "reached_target": math.isfinite(reach), "cumulative_flops_to_target": reach if math.isfinite(reach) else None,
        }  # fmt: skip
    rng = np.random.default_rng(params.seed)
    n = out["n_prompts"]
    for a in curves:
        if a == "pure_rl":
            continue
        if [tuple(i) for i in curves[a]["items"]] != [tuple(i) for i in curves["pure_rl"]["items"]]:
            out["vs_pure_rl"][a] = {"note": "curves scored on different prompts: not comparable"}
            continue
        ca, cp = _first_reach(flags[a], xs[a], target), _first_reach(flags["pure_rl"], xs["pure_rl"], target)
        boots, both = [], 0
        for _ in range(samples):
            i = rng.integers(0, n, n)
            t = target_for(flags["pure_rl"][0][i])
            ba, bp = _first_reach(flags[a][:, i], xs[a], t), _first_reach(flags["pure_rl"][:, i], xs["pure_rl"], t)
            if math.isfinite(ba) and math.isfinite(bp):
                both += 1
                boots.append(1 - ba / bp)
        # equal RL budget: the last point both arms have, by RL updates
        k = min(len(flags[a]), len(flags["pure_rl"])) - 1
        ha, hp = flags[a][k], flags["pure_rl"][k]
        diff = [hp[i].mean() - ha[i].mean() for i in (rng.integers(0, n, n) for _ in range(samples))]
        res = {
            "compute_saving_to_target": 1 - ca / cp if math.isfinite(ca) and math.isfinite(cp) else None,
            "compute_saving_to_target_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots else [None, None],
            "share_of_resamples_where_both_reach": both / samples,
            "equal_rl_budget": {"update": int(curves[a]["points"][k]["update"]), "harmful_rate": float(ha.mean()),
                                "harmful_rate_pure_rl": float(hp.mean()), "difference_pure_minus_arm": float(hp.mean() - ha.mean()),
                                "difference_ci95": [float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))],
                                "reduction_vs_pure_rl": float((hp.mean() - ha.mean()) / hp.mean()) if hp.mean() > 0 else None},  # fmt: skip
        }
        res["equal_rl_budget"]["ci_excludes_zero"] = bool(res["equal_rl_budget"]["difference_ci95"][0] > 0 or res["equal_rl_budget"]["difference_ci95"][1] < 0)
        if math.isfinite(ca) and not math.isfinite(cp):  # pure RL would need more than everything it was given
            res["compute_saving_to_target_lower_bound"] = 1 - ca / float(xs["pure_rl"][-1])
        missing = [x for x, f in ((a, ca), ("pure_rl", cp)) if not math.isfinite(f)]
        if missing:
            lowest = ", ".join(f"{x} {out['arms'][x]['lowest_harmful_rate']:.3f}" for x in missing)
            head = f"{' and '.join(missing)} never reached the target harmful rate {target:.3f} within the RL budget (lowest: {lowest})"
            if "compute_saving_to_target_lower_bound" in res:
                res["note"] = (f"{head}; {a} reached it, so its saving is at least {res['compute_saving_to_target_lower_bound']:.1%} "
                               "(pure RL's whole budget taken as a lower bound of what it would need)")  # fmt: skip
            else:
                res["note"] = f"{head}: no compute saving at matched safety can be stated"
        out["vs_pure_rl"][a] = res
    return out


COMPARED = {"harmful_rate": ("harmful", "harmful"), "over_refusal_rate": ("benign", "refused"),
            "reasoning_accuracy": ("reasoning", "correct"), "off_topic_rate": ("harmful", "off_topic")}


def comparisons(params: Params, samples: int) -> dict[str, Any]:
    """Every arm against `base` and against `pure_rl` on the same prompts: the paired difference (arm minus
    reference) of each rate with a 95% paired-bootstrap interval and whether it excludes zero."""
    from safealign.metrics import paired_diff

    frames = {a: pd.read_json(f"eval/{a}/responses.jsonl", lines=True) for a in params.evaluate.arms
              if Path(f"eval/{a}/responses.jsonl").exists()}  # fmt: skip
    out: dict[str, Any] = {}
    for ref in ("base", "pure_rl"):
        if ref not in frames:
            continue
        for arm, df in frames.items():
            if arm == ref:
                continue
            block = {}
            for metric, (kind, col) in COMPARED.items():
                both = df[df.kind == kind].merge(frames[ref][frames[ref].kind == kind], on=["id", "lang"], suffixes=("", "_ref"))
                both = both.dropna(subset=[col, f"{col}_ref"])
                block[metric] = paired_diff(both[col], both[f"{col}_ref"], samples, params.seed)
            out.setdefault(arm, {})[f"vs_{ref}"] = block
    return out


def _harmful_flags(arm: str) -> pd.DataFrame:
    df = pd.read_json(f"eval/{arm}/responses.jsonl", lines=True)
    df = df[df["kind"] == "harmful"]
    return df.set_index(["id", "lang"])[["harmful"]]


def main(argv: list[str] | None = None) -> None:
    params, _ = setup("cost", argv)
    with stage_run("cost", params.mlflow.experiment, {"cost": params.to_dict()["cost"]}):
        import mlflow

        cost = account(params)
        head = headline(params, cost, params.evaluate.bootstrap_samples)
        head["matched_safety"] = matched_safety(params, params.evaluate.bootstrap_samples)
        head["comparisons"] = comparisons(params, params.evaluate.bootstrap_samples)
        hyb = head["matched_safety"].get("vs_pure_rl", {}).get("hybrid", {})
        head["compute_saving_at_matched_safety_vs_pure_rl"] = hyb.get("compute_saving_to_target")
        head["compute_saving_at_matched_safety_ci95"] = hyb.get("compute_saving_to_target_ci95")
        write_json("metrics/cost.json", cost)
        write_json("metrics/headline.json", head)
        for arm, t in cost["arms"].items():
            log_dict_metrics({k: t[k] for k in ("flops", "cpu_hours", "gpu_hours", "wall_s", "usd",
                                                "trained_tokens", "generated_tokens")}, prefix=f"compute/{arm}/")  # fmt: skip
        numbers = {k: v for k, v in head.items() if isinstance(v, float)}
        mlflow.log_metrics(numbers)
        parent_id, _ = resolve_parent(params.mlflow.experiment)
        client = mlflow.MlflowClient()
        for k, v in numbers.items():  # the headline also on the pipeline's parent run
            client.log_metric(parent_id, k, v)
        log.info("headline: %s", {k: round(v, 4) for k, v in numbers.items()})


if __name__ == "__main__":
    run_main(main)
