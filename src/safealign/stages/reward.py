"""Stage reward: the safety reward model (core: safealign.train.reward).

Writes models/reward, metrics/reward.json (held-out pairwise accuracy per language, with intervals),
metrics/summary/reward.json and metrics/compute/reward.json.
"""

from __future__ import annotations

import logging

from safealign import paths, tracking
from safealign.io import atomic_dir, write_json
from safealign.stages.common import run_main, stage_main
from safealign.train.reward import train_reward

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("reward", argv, sections=("reward", "data")) as run:
        with run.meter, atomic_dir(paths.REWARD) as tmp:
            summary = train_reward(run.params, paths.BASE, tmp, f"{paths.CHECKPOINTS}/reward", run.meter)
        accuracy = summary.pop("accuracy")
        run.meter.record.extra.update(summary)
        write_json(paths.REWARD_METRICS, {"pairwise_accuracy": accuracy, **summary})
        write_json(paths.summary("reward"), {"acc": round(accuracy["overall"]["value"], 3)})  # held-out pairwise
        tracking.log_dict_metrics({"pairwise_accuracy": accuracy}, prefix="reward/")
        if run.params.mlflow.log_models:
            tracking.log_artifacts(paths.REWARD, "model")
        log.info(
            "reward model: loss %.4f, held-out pairwise accuracy %.3f",
            summary["train_loss"],
            accuracy["overall"]["value"],
        )


if __name__ == "__main__":
    run_main(main)
