"""PPO against the safety reward model, from the model `ppo.arms[<arm>]` (or `ppo.equal_compute[<arm>]`) names.

`pure_rl` starts from models/base, `hybrid` from models/sft; both use the same PPO settings, prompts and reward.
An equal-compute arm (stage ppo_equal) is the same run from its start for a given number of updates instead.
With `ppo.lora` the policy is a fresh LoRA adapter on the merged starting model, and the adapter-disabled model is
the KL reference (TRL: `ref_model=None` with a `peft_config`). The value model starts from the reward model, as
in TRL's PPO example.

PPOTrainer.train() cannot resume (trl#2657), so this stage runs PPO in segments of `ppo.checkpoint_every`
updates with one optimizer and one learning-rate schedule over the whole run, and after each segment saves the
policy adapter, the value model, optimizer, scheduler and RNG state to checkpoints/ppo/<arm>. A rerun after a
crash or a kill restores the last segment and trains only what is left; a checkpoint made with other settings is
ignored (its fingerprint differs).

This is the only module that imports PPO: it lives in `trl.experimental.ppo` up to trl 1.12 (removed in 1.13,
trl PRs #4482 and #7020), hence the `trl==1.12.*` pin.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from safealign import paths
from safealign.compute import ComputeMeter
from safealign.config import ConfigError, Params
from safealign.curve import SafetyCurve
from safealign.data import load_benchmark, rl_prompts, train_split
from safealign.models import load_policy, load_reward_model, write_lineage
from safealign.train import hf_args

log = logging.getLogger(__name__)


def prompt_dataset(rows: list[dict], tok, max_prompt_tokens: int):
    """PPO's train_dataset: one `input_ids` row per prompt, chat template applied, ready for generation."""
    from datasets import Dataset

    def encode(r: dict) -> dict:
        ids = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], add_generation_prompt=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        return {"input_ids": ids[-max_prompt_tokens:]}

    return Dataset.from_list([encode(r) for r in rows])


def trainer_config(params: Params, output_dir: str):
    from trl.experimental.ppo import PPOConfig

    args = hf_args(PPOConfig, params.ppo.args, "ppo", output_dir, params.seed)
    args.stop_token = args.stop_token or "eos"  # truncate responses at <|im_end|> before scoring
    return args


def fingerprint(params: Params, arm: str, updates: int | None = None) -> str:
    """What a checkpoint must match to be resumed: the PPO settings, the arm's start, its update count when set
    apart from the settings (equal-compute arms), and the data it reads."""
    blob = json.dumps(
        {
            "ppo": params.to_dict()["ppo"],
            "curve": params.to_dict()["curve"],
            "arm": arm,
            "updates": updates,
            "seed": params.seed,
            "languages": params.data.train_languages,
        },
        sort_keys=True,
        default=str,
    )
    for d in (params.ppo.all_arms()[arm], paths.REWARD):
        blob += (Path(d) / "safealign.json").read_text() if (Path(d) / "safealign.json").exists() else d
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(ckpt: Path, done: int, policy, value_model, optimizer, scheduler, extra: dict) -> None:
    """Everything needed to continue after update `done`, written to a temporary folder then swapped in."""
    from safetensors.torch import save_file

    tmp = ckpt.with_name(ckpt.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.save_pretrained(tmp / "policy")
    save_file({k: v.contiguous() for k, v in value_model.state_dict().items()}, tmp / "value.safetensors")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "np_rng": np.random.get_state(),
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps({"done": done, **extra}, indent=2, default=str))
    shutil.rmtree(ckpt, ignore_errors=True)
    tmp.rename(ckpt)


def load_checkpoint(ckpt: Path, fp: str, policy, value_model, optimizer, scheduler) -> dict | None:
    """Restore a matching checkpoint into the live objects; None when there is none to resume."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state_file = ckpt / "state.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if state.get("fingerprint") != fp:
        log.info("ignoring %s: made with other settings", ckpt)
        return None
    adapter = load_file(ckpt / "policy" / "adapter_model.safetensors")
    set_peft_model_state_dict(policy, adapter)
    value_model.load_state_dict(load_file(ckpt / "value.safetensors"))
    # our own file, written above: optimizer/scheduler state holds only tensors and numbers
    trainer_state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    torch.set_rng_state(trainer_state["rng"])
    np.random.set_state(trainer_state["np_rng"])
    return state


def ppo_trainer(args, tok, policy, reward_model, value_model, dataset, optimizers=(None, None)):
    """TRL's PPOTrainer as every PPO run here builds it: the adapter-disabled policy is the KL reference."""
    from trl.experimental.ppo import PPOTrainer

    return PPOTrainer(
        args=args,
        processing_class=tok,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=dataset,
        eval_dataset=dataset,
        optimizers=optimizers,
    )


def train_ppo(
    params: Params, arm: str, out: Path, ckpt_dir: str, meter: ComputeMeter, updates: int | None = None
) -> dict:
    """PPO for `arm` from its starting model: ceil(total_episodes / batch) updates, or `updates` when given."""
    import transformers
    from peft import LoraConfig, get_peft_model

    init = params.ppo.all_arms()[arm]
    transformers.set_seed(params.seed)  # the fresh LoRA adapter's initialization draws from the global RNG
    if not params.ppo.lora:
        raise ConfigError("params.yaml: ppo.lora is null; resumable PPO trains a LoRA policy (set ppo.lora)")
    # 1. prompts: harmful and benign training prompts in the training languages
    df = load_benchmark(params.data.dir, params.data.languages)
    rows = rl_prompts(train_split(df, params.data.train_languages))
    # 2. models: policy = fresh LoRA adapter on the merged starting point (the adapter-disabled model is the KL
    #    reference), reward model, value model initialized from the reward model
    base, tok = load_policy(init)
    policy = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **params.ppo.lora))
    reward_model, _ = load_reward_model(paths.REWARD)
    value_model, _ = load_reward_model(paths.REWARD)
    dataset = prompt_dataset(rows, tok, params.ppo.max_prompt_tokens)
    for m in (policy, value_model, reward_model):
        meter.watch(m)
    # 3. one optimizer (TRL's default: AdamW over policy and value parameters) and one schedule for the whole run
    args = trainer_config(params, ckpt_dir)
    per_update = args.per_device_train_batch_size * args.gradient_accumulation_steps
    total = updates or math.ceil(args.total_episodes / per_update)
    trainable = [p for p in policy.parameters() if p.requires_grad] + list(value_model.parameters())
    optimizer = torch.optim.AdamW(
        trainable,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
    )
    scheduler = transformers.get_scheduler(
        args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(total), num_training_steps=total
    )
    ckpt, fp = Path(ckpt_dir), fingerprint(params, arm, updates)
    state = load_checkpoint(ckpt, fp, policy, value_model, optimizer, scheduler) or {
        "done": 0,
        "history": [],
        "compute": {},
    }
    done, history = state["done"], state["history"]
    curve = SafetyCurve(params, init, paths.REWARD, state.get("curve"))
    if done:
        log.info("resuming PPO %s at update %d/%d from %s", arm, done, total, ckpt)
        meter.add(state["compute"])  # compute spent before the interruption is still this arm's compute
    else:
        curve.measure(policy, tok, 0, meter)  # the starting point (the fresh adapter is a no-op)
    log.info("PPO %s from %s on %d prompts: %d updates of %d episodes", arm, init, len(rows), total, per_update)
    # 4. train segment by segment, checkpointing after each
    every = params.ppo.checkpoint_every or total
    # Each segment is a new PPOTrainer whose MLflowCallback would log its TrainingArguments again, with the
    # segment's own seed and episode count: MLflow rejects changed param values. The stage logs the resolved
    # params once (stage_run); the callbacks log only training curves (MLFLOW_MAX_LOG_PARAMS=0: no params).
    os.environ["MLFLOW_MAX_LOG_PARAMS"] = "0"
    while done < total:
        n = min(every, total - done)
        seg_args = copy.copy(args)
        seg_args.total_episodes, seg_args.seed = n * per_update, params.seed + done  # new prompts per segment
        trainer = ppo_trainer(seg_args, tok, policy, reward_model, value_model, dataset, (optimizer, scheduler))
        trainer.train()
        done += n
        history += [
            h | {"update": done - n + i + 1}
            for i, h in enumerate(x for x in trainer.state.log_history if "objective/scores" in x)
        ]
        point = curve.measure(policy, tok, done, meter)
        if point:
            log.info(
                "PPO %s update %d: harmful rate %.3f on the curve slice at %.3g cumulative FLOPs",
                arm,
                done,
                point["harmful_rate"],
                point["cumulative_flops"],
            )
        if done < total:  # after the last segment the model itself is saved next; a checkpoint would be deleted
            save_checkpoint(
                ckpt,
                done,
                policy,
                value_model,
                optimizer,
                scheduler,
                {
                    "fingerprint": fp,
                    "total": total,
                    "history": history,
                    "compute": meter.snapshot(),
                    "curve": curve.points,
                },
            )
    # 5. save the policy: an adapter on top of `init`
    policy.save_pretrained(out)
    tok.save_pretrained(out)
    write_lineage(
        out,
        kind="adapter",
        parent=init,
        stage=f"ppo@{arm}",
        uses_reward=paths.REWARD,
        extra={"compute": paths.compute_record("ppo", arm)},
    )
    curve.save(arm, "ppo")
    shutil.rmtree(ckpt, ignore_errors=True)  # the run is complete: the model is the output now
    return {
        "episodes": total * per_update,
        "updates": total,
        "resumed_at_update": state["done"] or None,
        "first_score": history[0]["objective/scores"] if history else None,
        "last_score": history[-1]["objective/scores"] if history else None,
        "last_kl": history[-1]["objective/kl"] if history else None,
        "history": [
            {k: h.get(k) for k in ("update", "objective/scores", "objective/kl", "objective/entropy")} for h in history
        ],
    }
