"""Stage ppo@<arm>: PPO against the safety reward model (core: safealign.train.ppo), resumable in segments.

Writes models/ppo/<arm> (a LoRA adapter on the arm's starting model), metrics/curves/<arm>.json (the safety
curve) and metrics/compute/ppo_<arm>.json.
"""

from __future__ import annotations

import logging

from safealign import paths, tracking
from safealign.io import atomic_dir
from safealign.stages.common import run_main, stage_main
from safealign.train.ppo import train_ppo

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("ppo", argv, sections=("ppo", "curve", "data"), arms=lambda p: p.ppo.arms) as run:
        with run.meter, atomic_dir(paths.ppo_model(run.arm)) as tmp:
            summary = train_ppo(run.params, run.arm, tmp, f"{paths.CHECKPOINTS}/ppo/{run.arm}", run.meter)
        run.meter.record.extra.update(summary)
        tracking.log_curve(f"metrics/curves/{run.arm}.json")
        if run.params.mlflow.log_models:
            tracking.log_artifacts(paths.ppo_model(run.arm), "model")
        log.info(
            "PPO %s: reward %s -> %s in %d updates, %.1fs",
            run.arm,
            summary["first_score"],
            summary["last_score"],
            summary["updates"],
            run.meter.record.wall_s,
        )


if __name__ == "__main__":
    run_main(main)
