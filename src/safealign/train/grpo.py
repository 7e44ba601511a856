"""GRPO (TRL's GRPOTrainer) with rule rewards, as DeepSeek-R1 was trained.

Two rewards (safealign.rewards), weighted by `grpo.safety_weight` and `grpo.language_weight`
(GRPOConfig.reward_weights):
  safety    the safety reward model's score of the completion (the reward PPO optimizes), so the PPO and GRPO
            hybrids optimize the same safety signal with different algorithms
  language  1 if the completion is in the prompt's language by character-trigram profiles of the training texts
            (R1's language-consistency reward), else 0
Neither shares anything with the evaluation judge or its language check. The policy is a LoRA adapter on
`grpo.arms[<arm>]`; with `beta > 0` the adapter-disabled model is the KL reference. The same safety curve as PPO
is measured every `ppo.checkpoint_every` steps (metrics/curves/<arm>.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

from safealign import paths
from safealign.compute import ComputeMeter
from safealign.config import ConfigError, Params
from safealign.curve import SafetyCurve
from safealign.data import load_benchmark, rl_prompts, train_split
from safealign.models import load_policy, load_reward_model, write_lineage
from safealign.rewards import NgramLanguageId, grpo_rewards, training_texts
from safealign.train import hf_args

log = logging.getLogger(__name__)


def trainer_config(params: Params, output_dir: str):
    from trl import GRPOConfig

    args = hf_args(GRPOConfig, params.grpo.args, "grpo", output_dir, params.seed)
    args.reward_weights = [params.grpo.safety_weight, params.grpo.language_weight]
    return args


def train_grpo(params: Params, arm: str, out: Path, ckpt_dir: str, meter: ComputeMeter) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    init = params.grpo.arms[arm]
    if not params.grpo.lora:
        raise ConfigError("params.yaml: grpo.lora is null; the GRPO arm trains a LoRA policy (set grpo.lora)")
    df = load_benchmark(params.data.dir, params.data.languages)
    train = train_split(df, params.data.train_languages)
    rows = rl_prompts(train)
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["prompt"]}], "lang": r["lang"], "kind": r["kind"]} for r in rows]
    )
    model, tok = load_policy(init)
    reward_model, reward_tok = load_reward_model(paths.REWARD)
    meter.watch(reward_model)  # scoring completions is part of the RL step's compute
    langid = NgramLanguageId.fit(training_texts(df[df.split == "train"]))
    args = trainer_config(params, ckpt_dir)
    curve = SafetyCurve(params, init, paths.REWARD)
    every = params.ppo.checkpoint_every or args.max_steps

    class CurveCallback(TrainerCallback):
        def on_step_end(self, a, state, control, model=None, **kw):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                point = curve.measure(model, tok, state.global_step, meter)
                model.train()
                if point:
                    log.info(
                        "GRPO %s step %d: harmful rate %.3f on the curve slice",
                        arm,
                        state.global_step,
                        point["harmful_rate"],
                    )

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=grpo_rewards(reward_model, reward_tok, langid),
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=LoraConfig(task_type="CAUSAL_LM", **params.grpo.lora),
        callbacks=[CurveCallback()],
    )
    meter.watch(trainer.model)
    log.info("GRPO %s from %s on %d prompts: %d steps", arm, init, len(rows), args.max_steps)
    curve.measure(trainer.model, tok, 0, meter)
    result = trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(out)
    write_lineage(
        out,
        kind="adapter",
        parent=init,
        stage=f"grpo@{arm}",
        uses_reward=paths.REWARD,
        extra={"compute": paths.compute_record("grpo", arm)},
    )
    curve.save(arm, "grpo")
    history = [h for h in trainer.state.log_history if "reward" in h]
    return {
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "first_reward": history[0]["reward"] if history else None,
        "last_reward": history[-1]["reward"] if history else None,
        "history": [
            {k: h.get(k) for k in ("step", "reward", "rewards/safety/mean", "rewards/language/mean", "kl")}
            for h in history
        ],
    }
