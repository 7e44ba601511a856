"""Stage ppo@<arm>: PPO against the safety reward model (core: safealign.train.ppo), resumable in segments.

Writes models/ppo/<arm> (a LoRA adapter on the arm's starting model), metrics/curves/<arm>.json (the safety
curve) and metrics/compute/ppo_<arm>.json. Stage ppo_equal@<arm> runs this for an arm of `ppo.equal_compute`,
after ppo@pure_rl and ppo@hybrid: as many updates as bring its total training FLOPs to the hybrid's
(safealign.accounting.equal_compute_budget).
"""

from __future__ import annotations

import logging

from safealign import paths
from safealign.accounting import equal_compute_budget
from safealign.io import atomic_dir
from safealign.stages.common import end_rl_arm, run_main, stage_main
from safealign.train.ppo import train_ppo

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("ppo", argv, sections=("ppo", "curve", "data"), arms=lambda p: p.ppo.all_arms()) as run:
        budget = equal_compute_budget(run.params) if run.arm in run.params.ppo.equal_compute else None
        if budget:
            log.info(
                "PPO %s: %d updates = pure_rl's %d + %d for the hybrid's extra %.3g training FLOPs (%.3g per update)",
                run.arm,
                budget["updates"],
                budget["pure_rl_updates"],
                budget["extra_updates"],
                budget["hybrid_training_flops"] - budget["pure_rl_training_flops"],
                budget["flops_per_update"],
            )
        with run.meter, atomic_dir(paths.ppo_model(run.arm)) as tmp:
            summary = train_ppo(
                run.params,
                run.arm,
                tmp,
                f"{paths.CHECKPOINTS}/ppo/{run.arm}",
                run.meter,
                updates=budget["updates"] if budget else None,
            )
        run.meter.record.extra.update(summary | ({"equal_compute": budget} if budget else {}))
        end_rl_arm(
            run,
            paths.ppo_model(run.arm),
            f"reward {summary['first_score']} -> {summary['last_score']} in {summary['updates']} updates",
        )


if __name__ == "__main__":
    run_main(main)
