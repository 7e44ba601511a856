"""Stage grpo@<arm>: GRPO with rule rewards (core: safealign.train.grpo).

Writes models/grpo/<arm> (a LoRA adapter), metrics/curves/<arm>.json and metrics/compute/grpo_<arm>.json.
"""

from __future__ import annotations

from safealign import paths
from safealign.io import atomic_dir
from safealign.stages.common import end_rl_arm, run_main, stage_main
from safealign.train.grpo import train_grpo


def main(argv: list[str] | None = None) -> None:
    with stage_main("grpo", argv, sections=("grpo", "curve", "data"), arms=lambda p: p.grpo.arms) as run:
        with run.meter, atomic_dir(paths.grpo_model(run.arm)) as tmp:
            summary = train_grpo(run.params, run.arm, tmp, f"{paths.CHECKPOINTS}/grpo/{run.arm}", run.meter)
        run.meter.record.extra.update(summary)
        end_rl_arm(
            run,
            paths.grpo_model(run.arm),
            f"reward {summary['first_reward']} -> {summary['last_reward']} in {summary['steps']} steps",
        )


if __name__ == "__main__":
    run_main(main)
