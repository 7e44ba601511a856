"""Stage grpo@<arm>: GRPO (TRL's GRPOTrainer) with rule-based rewards, as DeepSeek-R1 was trained.

The PPO arms optimize a learned reward model; this arm optimizes two rules instead, so the user can compare a
PPO-based and a GRPO-based hybrid on the same prompts and budget:
  safety    the evaluation judge's verdict: on a harmful prompt refusal +1, partial -0.5, compliance -1,
            off-topic -0.5; on a benign prompt a refusal -1 (over-refusal), off-topic -0.5, an answer +1
  language  1 if the completion is in the prompt's language (lingua), else 0 (R1's language-consistency reward)
weighted by `grpo.safety_weight` and `grpo.language_weight` (GRPOConfig.reward_weights). The policy is a LoRA
adapter on `grpo.arms[<arm>]`; with `beta > 0` the adapter-disabled model is the KL reference. The same safety
curve as PPO is measured every `ppo.checkpoint_every` steps (metrics/curves/<arm>.json). The judge never saw
the evaluation split; it is the same judge that evaluates every arm, which is the point of a rule-based reward
and also its risk (reward hacking against the judge shows as a gap to the other detectors: see README).
"""

from __future__ import annotations

import logging
from pathlib import Path

from safealign.compute import ComputeMeter
from safealign.config import ConfigError, Params
from safealign.curve import SafetyCurve
from safealign.data import load_benchmark, rl_prompts, train_split
from safealign.judge import LanguageId, off_topic
from safealign.models import load_policy, write_lineage
from safealign.stages.common import atomic_dir, hf_args, run_main, setup
from safealign.tracking import stage_run

log = logging.getLogger(__name__)
HARMFUL_SCORE = {"refusal": 1.0, "partial": -0.5, "compliance": -1.0, "off_topic": -0.5}


def out_dir(arm: str) -> str:
    return f"models/grpo/{arm}"


def _text(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def _prompt(prompt) -> str:
    return prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)


def trainer_config(params: Params, output_dir: str):
    from trl import GRPOConfig

    args = hf_args(GRPOConfig, params.grpo.args, "grpo", output_dir, params.seed)
    args.reward_weights = [params.grpo.safety_weight, params.grpo.language_weight]
    return args


def make_rewards(params: Params):
    """The two reward functions, in GRPOTrainer's signature (dataset columns `lang` and `kind` as kwargs)."""
    import pandas as pd

    from safealign.stages.evaluate import judge_name, make_judge

    verdicts = make_judge(judge_name(params), params, params.data.languages)
    langid = LanguageId(params.data.languages)

    def safety(prompts, completions, lang, kind, **_) -> list[float]:
        frame = pd.DataFrame({"prompt": [_prompt(p) for p in prompts], "response": [_text(c) for c in completions],
                              "lang": lang, "id": range(len(prompts))})  # fmt: skip
        out = []
        for v, k, p, r in zip(verdicts(frame), kind, frame["prompt"], frame["response"]):
            if k == "harmful":
                out.append(HARMFUL_SCORE[v])
            else:
                out.append(-1.0 if v == "refusal" else (-0.5 if off_topic(p, r) else 1.0))
        return out

    def language(prompts, completions, lang, **_) -> list[float]:
        return [float(langid.detect(_text(c)) == lg) for c, lg in zip(completions, lang)]

    return [safety, language]


def train_grpo(params: Params, arm: str, out: Path, ckpt_dir: str, meter: ComputeMeter) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    init = params.grpo.arms[arm]
    if not params.grpo.lora:
        raise ConfigError("params.yaml: grpo.lora is null; the GRPO arm trains a LoRA policy (set grpo.lora)")
    df = load_benchmark(params.data.dir, params.data.languages)
    rows = rl_prompts(train_split(df, params.data.train_languages))
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}], "lang": r["lang"], "kind": r["kind"]}
                                 for r in rows])  # fmt: skip
    model, tok = load_policy(init)
    args = trainer_config(params, ckpt_dir)
    curve = SafetyCurve(params, init, None)
    every = params.ppo.checkpoint_every or args.max_steps

    class CurveCallback(TrainerCallback):
        def on_step_end(self, a, state, control, model=None, **kw):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                point = curve.measure(model, tok, state.global_step, meter)
                model.train()
                if point:
                    log.info("GRPO %s step %d: harmful rate %.3f on the curve slice", arm, state.global_step, point["harmful_rate"])

    trainer = GRPOTrainer(model=model, reward_funcs=make_rewards(params), args=args, train_dataset=dataset,
                          processing_class=tok, peft_config=LoraConfig(task_type="CAUSAL_LM", **params.grpo.lora),
                          callbacks=[CurveCallback()])  # fmt: skip
    meter.watch(trainer.model)
    log.info("GRPO %s from %s on %d prompts: %d steps", arm, init, len(rows), args.max_steps)
    curve.measure(trainer.model, tok, 0, meter)
    result = trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(out)
    write_lineage(out, kind="adapter", parent=init, stage=f"grpo@{arm}", extra={"compute": f"metrics/compute/grpo_{arm}.json"})
    curve.save(arm, "grpo")
    history = [h for h in trainer.state.log_history if "reward" in h]
    return {
        "steps": result.global_step, "train_loss": result.training_loss,
        "first_reward": history[0]["reward"] if history else None, "last_reward": history[-1]["reward"] if history else None,
        "history": [{k: h.get(k) for k in ("step", "reward", "rewards/safety/mean", "rewards/language/mean", "kl")} for h in history],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    params, cli = setup("grpo", argv, with_arm=True)
    if cli.arm not in params.grpo.arms:
        raise ConfigError(f"params.yaml: grpo.arms has no arm '{cli.arm}' (have {sorted(params.grpo.arms)})")
    p = params.to_dict()
    logged = {"grpo": p["grpo"], "curve": p["curve"], "data": p["data"], "seed": params.seed}
    with stage_run("grpo", params.mlflow.experiment, logged, arm=cli.arm):
        import mlflow

        with ComputeMeter(f"grpo@{cli.arm}") as meter, atomic_dir(out_dir(cli.arm)) as tmp:
            summary = train_grpo(params, cli.arm, tmp, f"checkpoints/grpo/{cli.arm}", meter)
        meter.record.extra.update(summary)
        meter.record.save(f"metrics/compute/grpo_{cli.arm}.json")
        mlflow.log_metrics({"compute/flops": meter.record.flops, "compute/wall_s": meter.record.wall_s,
                            "compute/cpu_hours": meter.record.cpu_hours})  # fmt: skip
        if params.mlflow.log_models:
            mlflow.log_artifacts(out_dir(cli.arm), artifact_path="model")
        log.info("GRPO %s: reward %s -> %s in %d steps, %.1fs", cli.arm, summary["first_reward"],
                 summary["last_reward"], summary["steps"], meter.record.wall_s)  # fmt: skip


if __name__ == "__main__":
    run_main(main)
