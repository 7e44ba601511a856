"""Supervised fine-tuning on safe demonstrations with TRL's SFTTrainer (LoRA by default): the training split of
`data.train_languages`, refuse-and-redirect answers to harmful prompts and helpful ones to benign prompts."""

from __future__ import annotations

import logging
from pathlib import Path

from safealign import paths
from safealign.compute import ComputeMeter
from safealign.config import Params
from safealign.data import load_benchmark, sft_rows, train_split
from safealign.models import load_policy, write_lineage
from safealign.train import hf_args

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
        extra={"compute": paths.compute_record("sft")},
    )
    return {"train_loss": result.training_loss, "examples": len(rows), "steps": result.global_step}
