"""Stage grpo@<arm>: GRPO with rule rewards (core: safealign.train.grpo).

Writes models/grpo/<arm> (a LoRA adapter), metrics/curves/<arm>.json and metrics/compute/grpo_<arm>.json.
"""

from __future__ import annotations

import logging

from safealign import paths, tracking
from safealign.io import atomic_dir
from safealign.stages.common import run_main, stage_main
from safealign.train.grpo import train_grpo

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("grpo", argv, sections=("grpo", "curve", "data"), arms=lambda p: p.grpo.arms) as run:
        with run.meter, atomic_dir(paths.grpo_model(run.arm)) as tmp:
            summary = train_grpo(run.params, run.arm, tmp, f"{paths.CHECKPOINTS}/grpo/{run.arm}", run.meter)
        run.meter.record.extra.update(summary)
        tracking.log_curve(f"metrics/curves/{run.arm}.json")
        if run.params.mlflow.log_models:
            tracking.log_artifacts(paths.grpo_model(run.arm), "model")
        log.info(
            "GRPO %s: reward %s -> %s in %d steps, %.1fs",
            run.arm,
            summary["first_reward"],
            summary["last_reward"],
            summary["steps"],
            run.meter.record.wall_s,
        )


if __name__ == "__main__":
    run_main(main)
