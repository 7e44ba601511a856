"""Stage cost: compute per stage and per arm, money at the prices in params, and the headline numbers.

The core is safealign.accounting (lineage compute, headline at the configured budgets and at matched safety,
paired arm comparisons, every interval clustered by item). Writes metrics/cost.json, metrics/headline.json and
metrics/summary/headline.json (DVC metrics), and puts the headline on the pipeline's parent MLflow run.
"""

from __future__ import annotations

import logging

from safealign import paths, tracking
from safealign.accounting import account, comparisons, headline, matched_safety
from safealign.io import write_json
from safealign.stages.common import run_main, stage_main

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("cost", argv, sections=("cost",)) as run:
        params, samples = run.params, run.params.evaluate.bootstrap_samples
        cost = account(params)
        head = headline(params, cost, samples)
        head["matched_safety"] = matched_safety(params, samples)
        head["comparisons"] = comparisons(params, samples)
        hyb = head["matched_safety"].get("vs_pure_rl", {}).get("hybrid", {})
        head["compute_saving_at_matched_safety_vs_pure_rl"] = hyb.get("compute_saving_to_target")
        head["compute_saving_at_matched_safety_ci95"] = hyb.get("compute_saving_to_target_ci95")
        write_json(paths.COST, cost)
        write_json(paths.HEADLINE, head)
        # hybrid vs pure RL: harmful-rate reduction, compute saving at matched safety and at the configured budgets
        figures = {
            "reduction": head.get("harmful_rate_reduction_vs_pure_rl"),
            "saving": head["compute_saving_at_matched_safety_vs_pure_rl"],
            "saving_cfg": head.get("compute_saving_vs_pure_rl"),
        }
        write_json(paths.summary("headline"), {k: None if v is None else round(v, 3) for k, v in figures.items()})
        for arm, t in cost["arms"].items():
            keys = ("flops", "cpu_hours", "gpu_hours", "wall_s", "usd", "trained_tokens", "generated_tokens")
            tracking.log_dict_metrics({k: t[k] for k in keys}, prefix=f"compute/{arm}/")
        numbers = {k: v for k, v in head.items() if isinstance(v, float)}
        tracking.log_metrics(numbers)
        parent_id, _ = tracking.resolve_parent(params.mlflow.experiment)
        tracking.log_run_metrics(parent_id, numbers)  # the headline also on the pipeline's parent run
        log.info("headline: %s", {k: round(v, 4) for k, v in numbers.items()})


if __name__ == "__main__":
    run_main(main)
