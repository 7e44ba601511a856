"""The safety curve of an RL stage: harmful rate against cumulative training compute, measured while it trains.

At the start and after every checkpoint segment, the policy answers a fixed slice of held-out harmful prompts
(`curve.items_per_language` per language, stratified over harm categories, the same ids in every language, a
second seeded subsample of the eval split) in the languages where the evaluation judge is validated, and that judge
classes each answer. Each point keeps the per-prompt
flags, so the cost stage can bootstrap "compute to reach the target harmful rate" and "harmful rate at equal RL
budget" over prompts. Compute on the x axis is cumulative: everything that made the starting model (SFT) plus the
reward model the stage uses plus the RL compute so far; scoring the curve itself is excluded from the stage's
compute (ComputeMeter.excluded).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from safealign import paths
from safealign.accounting import prior_compute
from safealign.compute import ComputeMeter
from safealign.config import Params
from safealign.data import eval_items, load_benchmark
from safealign.generation import generate
from safealign.judge import HARMFUL_VERDICTS


class SafetyCurve:
    def __init__(self, params: Params, init_dir: str, reward_dir: str | None, points: list[dict] | None = None):
        from safealign.evaluation import load_judge

        c = params.curve
        self.params, self.enabled = params, c.items_per_language > 0
        self.prior = prior_compute(init_dir, reward_dir)
        self.points: list[dict[str, Any]] = list(points or [])
        if not self.enabled:
            return
        self.judge, self.verdicts, identity = load_judge(params)
        languages = [lg for lg in params.data.languages if lg in identity["validated_languages"]]
        df = load_benchmark(params.data.dir, params.data.languages)
        items = eval_items(df, languages, {"harmful": c.items_per_language}, params.seed + 1)
        self.items = items[items["kind"] == "harmful"].reset_index(drop=True)
        self.enabled = len(self.items) > 0

    def measure(self, model, tok, update: int, meter: ComputeMeter) -> dict[str, Any] | None:
        """Score the policy now; the scoring is not counted as training compute."""
        if not self.enabled:
            return None
        c = self.params.curve
        with meter.excluded():
            responses = generate(
                model,
                tok,
                self.items["prompt"].tolist(),
                c.max_new_tokens,
                c.batch_size,
                desc=f"curve@{update}",
                batch_tokens=c.batch_tokens,
            )
            verdicts = self.verdicts(self.items[["id", "lang", "kind", "prompt"]].assign(response=responses))
        snap = meter.snapshot()
        flags = [int(v in HARMFUL_VERDICTS) for v in verdicts]
        point = {
            "update": update,
            "rl_flops": snap["flops"],
            "rl_cpu_s": snap["cpu_s"],
            "cumulative_flops": self.prior["flops"] + snap["flops"],
            "cumulative_cpu_s": self.prior["cpu_s"] + snap["cpu_s"],
            "harmful_rate": float(np.mean(flags)) if flags else None,
            "n": len(flags),
            "flags": flags,
        }
        self.points = [p for p in self.points if p["update"] != update] + [point]
        return point

    def document(self, arm: str, trainer: str) -> dict[str, Any]:
        return {
            "arm": arm,
            "trainer": trainer,
            "judge": getattr(self, "judge", None),
            "prior": self.prior,
            "items": [[r.id, r.lang] for r in self.items.itertuples()] if self.enabled else [],
            "points": sorted(self.points, key=lambda p: p["update"]),
        }

    def save(self, arm: str, trainer: str) -> None:
        from safealign.io import write_json

        doc = self.document(arm, trainer)
        write_json(paths.curve(arm), doc)
        path = Path(paths.curve_plot(arm))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "update", "cumulative_tflops", "rl_tflops", "harmful_rate"])
            for p in doc["points"]:
                w.writerow([arm, p["update"], p["cumulative_flops"] / 1e12, p["rl_flops"] / 1e12, p["harmful_rate"]])
