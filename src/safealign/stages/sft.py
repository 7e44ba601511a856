"""Stage sft: supervised fine-tuning on safe demonstrations with TRL's SFTTrainer (LoRA by default).

Reads the training split of `data.train_languages`; writes models/sft (adapter, or a full model when `sft.lora`
is null) with its lineage, and metrics/compute/sft.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

from safealign.compute import ComputeMeter
from safealign.config import Params
from safealign.data import load_benchmark, sft_rows, train_split
from safealign.models import load_policy, write_lineage
from safealign.stages.common import atomic_dir, hf_args, run_main, setup
from safealign.tracking import record_compute, stage_run

BASE, OUT, CKPT = "models/base", "models/sft", "checkpoints/sft"
log = logging.getLogger(__name__)


def trainer_config(params: Params, output_dir: str):
    from trl import SFTConfig

    return hf_args(SFTConfig, params.sft.args, "sft", output_dir, params.seed)


def train_sft(params: Params, base_dir: str, out_dir: Path, ckpt_dir: str, meter: ComputeMeter) -> dict:
    """Fine-tune the base model on refuse-and-redirect / helpful demonstrations; save adapter or model."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTTrainer

    # 1. data: conversational prompt/completion rows, loss on the completion only
    df = load_benchmark(params.data.dir, params.data.languages)
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"]}
        for r in sft_rows(train_split(df, params.data.train_languages))
    ]
    log.info("SFT on %d demonstrations in %s", len(rows), params.data.train_languages)
    # 2. model
    model, tok = load_policy(base_dir)
    peft_config = LoraConfig(task_type="CAUSAL_LM", **params.sft.lora) if params.sft.lora else None
    # 3. train
    args = trainer_config(params, ckpt_dir)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=peft_config
    )
    meter.watch(trainer.model)
    result = trainer.train()
    # 4. save: an adapter is applied on top of models/base when loaded (see safealign.models)
    trainer.save_model(str(out_dir))
    tok.save_pretrained(out_dir)
    write_lineage(
        out_dir,
        kind="adapter" if peft_config else "full",
        parent=base_dir,
        stage="sft",
        extra={"compute": "metrics/compute/sft.json"},
    )
    return {"train_loss": result.training_loss, "examples": len(rows), "steps": result.global_step}


def main(argv: list[str] | None = None) -> None:
    params, _ = setup("sft", argv)
    p = params.to_dict()
    with stage_run(
        "sft", params.mlflow.experiment, {"sft": p["sft"], "data": p["data"], "seed": params.seed}, arm="sft"
    ):
        import mlflow

        with ComputeMeter("sft") as meter, atomic_dir(OUT) as tmp:
            summary = train_sft(params, BASE, tmp, CKPT, meter)
        meter.record.extra.update(summary)
        record_compute(meter.record, "metrics/compute/sft.json", params.cost)
        mlflow.log_metrics({"sft/final_train_loss": summary["train_loss"]})
        if params.mlflow.log_models:
            mlflow.log_artifacts(OUT, artifact_path="model")
        log.info("SFT done: loss %.4f, %d steps, %.1fs", summary["train_loss"], summary["steps"], meter.record.wall_s)


if __name__ == "__main__":
    run_main(main)
