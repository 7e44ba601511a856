"""Stage sft: supervised fine-tuning on safe demonstrations (core: safealign.train.sft).

Writes models/sft (a LoRA adapter, or a full model when `sft.lora` is null) with its lineage, and
metrics/compute/sft.json.
"""

from __future__ import annotations

import logging

from safealign import paths, tracking
from safealign.io import atomic_dir
from safealign.stages.common import run_main, stage_main
from safealign.train.sft import train_sft

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("sft", argv, sections=("sft", "data")) as run:
        with run.meter, atomic_dir(paths.SFT) as tmp:
            summary = train_sft(run.params, paths.BASE, tmp, f"{paths.CHECKPOINTS}/sft", run.meter)
        run.meter.record.extra.update(summary)
        tracking.log_metrics({"sft/final_train_loss": summary["train_loss"]})
        if run.params.mlflow.log_models:
            tracking.log_artifacts(paths.SFT, "model")
        log.info(
            "SFT done: loss %.4f, %d steps, %.1fs", summary["train_loss"], summary["steps"], run.meter.record.wall_s
        )


if __name__ == "__main__":
    run_main(main)
