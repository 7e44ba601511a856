"""The safety reward model, trained with TRL's RewardTrainer on the preference pairs.

Pairs: chosen = refuse-and-redirect, rejected = compliant or partial, for harmful prompts; chosen = helpful,
rejected = over-refusal, for benign prompts. The model starts from the base model with a scalar head; PPO uses it
as `reward_model` (and to initialize the value model), GRPO as its safety reward. Its pairwise accuracy on the eval
split is measured per language (not training compute). It is never the judge of an arm (safealign.detection)."""

from __future__ import annotations

import logging
from pathlib import Path

from safealign import paths
from safealign.compute import ComputeMeter
from safealign.config import Params
from safealign.data import eval_items, load_benchmark, preference_rows, train_split
from safealign.metrics import rate
from safealign.models import load_reward_model, score, write_lineage
from safealign.train import hf_args

log = logging.getLogger(__name__)


def pairwise_accuracy(model, tok, pairs: list[dict], samples: int, seed: int) -> dict:
    """Share of held-out pairs where chosen outscores rejected, overall and per language (with 95% CI)."""
    prompts = [p["prompt"] for p in pairs]
    chosen = score(model, tok, prompts, [p["chosen"][0]["content"] for p in pairs])
    rejected = score(model, tok, prompts, [p["rejected"][0]["content"] for p in pairs])
    wins = [float(c > r) for c, r in zip(chosen, rejected)]
    items = [p["id"] for p in pairs]  # an item's pairs and translations are one cluster
    out = {"overall": rate(wins, samples, seed, items), "per_language": {}}
    for lang in sorted({p["lang"] for p in pairs}):
        mine = [(w, p["id"]) for w, p in zip(wins, pairs) if p["lang"] == lang]
        out["per_language"][lang] = rate([w for w, _ in mine], samples, seed, [i for _, i in mine])
    return out


def trainer_config(params: Params, output_dir: str):
    from trl import RewardConfig

    return hf_args(RewardConfig, params.reward.args, "reward", output_dir, params.seed)


def train_reward(params: Params, base_dir: str, out_dir: Path, ckpt_dir: str, meter: ComputeMeter) -> dict:
    from datasets import Dataset
    from trl import RewardTrainer

    # 1. data
    df = load_benchmark(params.data.dir, params.data.languages)
    pairs = preference_rows(train_split(df, params.data.train_languages))
    keep = ("prompt", "chosen", "rejected")
    log.info("reward model on %d preference pairs", len(pairs))
    # 2. model: base weights + a scalar head
    model, tok = load_reward_model(base_dir)
    # 3. train
    args = trainer_config(params, ckpt_dir)
    trainer = RewardTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_list([{k: p[k] for k in keep} for p in pairs]),
    )
    meter.watch(model)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tok.save_pretrained(out_dir)
    write_lineage(out_dir, kind="full", parent=None, stage="reward", extra={"compute": paths.compute_record("reward")})
    # 4. held-out pairwise accuracy (eval split, every language: includes languages never trained on); a
    #    measurement, not training compute
    n = params.reward.eval_pairs_per_language
    eval_pairs = preference_rows(
        eval_items(df, params.data.languages, {"harmful": n // 2, "benign": n - n // 2}, params.seed)
    )
    with meter.excluded():
        accuracy = pairwise_accuracy(trainer.model, tok, eval_pairs, params.evaluate.bootstrap_samples, params.seed)
    return {"train_loss": result.training_loss, "pairs": len(pairs), "steps": result.global_step, "accuracy": accuracy}
