"""Stage ppo@<arm>: PPO against the safety reward model, from the model `ppo.arms[<arm>]` names.

`pure_rl` starts from models/base, `hybrid` from models/sft; both use the same PPO settings, prompts and reward.
With `ppo.lora` the policy is a fresh LoRA adapter on the merged starting model, and the adapter-disabled model is
the KL reference (TRL: `ref_model=None` with a `peft_config`). The value model starts from the reward model, as
in TRL's PPO example.

This is the only module that imports PPO: it lives in `trl.experimental.ppo` up to trl 1.12 (removed in 1.13,
trl PRs #4482 and #7020), hence the `trl==1.12.*` pin.
"""

from __future__ import annotations

import logging
from pathlib import Path

from safealign.compute import ComputeMeter
from safealign.config import ConfigError, Params
from safealign.data import load_benchmark, rl_prompts, train_split
from safealign.models import load_policy, write_lineage
from safealign.stages.common import atomic_dir, hf_args, run_main, setup
from safealign.stages.reward import load_reward_model
from safealign.tracking import stage_run

REWARD = "models/reward"
log = logging.getLogger(__name__)


def out_dir(arm: str) -> str:
    return f"models/ppo/{arm}"


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


def train_ppo(params: Params, arm: str, out: Path, ckpt_dir: str, meter: ComputeMeter) -> dict:
    from peft import LoraConfig
    from trl.experimental.ppo import PPOTrainer

    init = params.ppo.arms[arm]
    # 1. prompts: harmful and benign training prompts in the training languages
    df = load_benchmark(params.data.dir, params.data.languages)
    rows = rl_prompts(train_split(df, params.data.train_languages))
    # 2. models: policy (merged starting point), reward, value (initialized from the reward model)
    policy, tok = load_policy(init)
    reward_model, _ = load_reward_model(REWARD)
    value_model, _ = load_reward_model(REWARD)
    dataset = prompt_dataset(rows, tok, params.ppo.max_prompt_tokens)
    log.info("PPO %s from %s on %d prompts", arm, init, len(rows))
    # 3. train
    args = trainer_config(params, ckpt_dir)
    peft_config = LoraConfig(task_type="CAUSAL_LM", **params.ppo.lora) if params.ppo.lora else None
    trainer = PPOTrainer(
        args=args, processing_class=tok, model=policy, ref_model=None if peft_config else _copy(policy),
        reward_model=reward_model, value_model=value_model, train_dataset=dataset, eval_dataset=dataset,
        peft_config=peft_config,
    )  # fmt: skip
    for m in (trainer.model.policy, value_model, reward_model, trainer.ref_model):
        if m is not None:
            meter.watch(m)
    trainer.train()
    # 4. save the policy: an adapter on top of `init`, or a full model
    trainer.save_model(str(out))
    tok.save_pretrained(out)
    write_lineage(out, kind="adapter" if peft_config else "full", parent=init, stage=f"ppo@{arm}",
                  uses_reward=REWARD, extra={"compute": f"metrics/compute/ppo_{arm}.json"})  # fmt: skip
    history = [h for h in trainer.state.log_history if "objective/scores" in h]
    return {
        "episodes": trainer.state.episode,
        "updates": trainer.state.global_step,
        "first_score": history[0]["objective/scores"] if history else None,
        "last_score": history[-1]["objective/scores"] if history else None,
        "last_kl": history[-1]["objective/kl"] if history else None,
    }


def _copy(model):
    import copy

    return copy.deepcopy(model).eval()


def main(argv: list[str] | None = None) -> None:
    params, cli = setup("ppo", argv, with_arm=True)
    if cli.arm not in params.ppo.arms:
        raise ConfigError(f"params.yaml: ppo.arms has no arm '{cli.arm}' (have {sorted(params.ppo.arms)})")
    p = params.to_dict()
    logged = {"ppo": p["ppo"], "data": p["data"], "seed": params.seed}
    with stage_run("ppo", params.mlflow.experiment, logged, arm=cli.arm):
        import mlflow

        with ComputeMeter(f"ppo@{cli.arm}") as meter, atomic_dir(out_dir(cli.arm)) as tmp:
            summary = train_ppo(params, cli.arm, tmp, f"checkpoints/ppo/{cli.arm}", meter)
        meter.record.extra.update(summary)
        meter.record.save(f"metrics/compute/ppo_{cli.arm}.json")
        mlflow.log_metrics({"compute/flops": meter.record.flops, "compute/wall_s": meter.record.wall_s,
                            "compute/cpu_hours": meter.record.cpu_hours})  # fmt: skip
        if params.mlflow.log_models:
            mlflow.log_artifacts(out_dir(cli.arm), artifact_path="model")
        log.info("PPO %s: reward %s -> %s in %d updates, %.1fs", cli.arm, summary["first_score"],
                 summary["last_score"], summary["updates"], meter.record.wall_s)  # fmt: skip


if __name__ == "__main__":
    run_main(main)
