"""Training at the machine's limit: SFT, reward and one PPO update, each against the fp32 matmul peak measured in
the same run, and where a PPO update's time goes.

FLOPs are the compute meter's (safealign.compute: real tokens only, LoRA at ~4N per trained token, padding counted
apart), the same numbers the stages log. SFT and reward are timed as the stages run them (train_sft / train_reward
with their model loading) and inside the trainer's train() (the same FLOPs: loading runs no metered forward); PPO
is TRL's PPOTrainer built as train_ppo builds it, timed around train() only, with timers on its parts. Needs models/
from a run (base, sft, reward). Usage, from the repository root:

    python bench/training_peak.py [--sft-steps 8] [--reward-steps 8] [--ppo-updates 2]   # 0 skips a part
    python bench/training_peak.py --ppo-updates 0 --reward-steps 0 --sft-variant sft.lora.lora_dropout=0.05

`--sft-variant KEY=VALUE` (repeatable; the value is read as YAML) runs SFT a second time with those params
overridden, so a change and its baseline are measured in the same run against the same peak. `--profile N` runs
each SFT and reward train() under torch.profiler and prints its N most expensive ops by self CPU time (the profiler
slows the run: its rates are not comparable with an unprofiled one):

    python bench/training_peak.py --ppo-updates 0 --reward-steps 0 --sft-steps 4 --profile 12
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_peak import peak_gflops  # noqa: E402

from safealign import paths  # noqa: E402
from safealign.compute import ComputeMeter  # noqa: E402
from safealign.config import load_params  # noqa: E402


def stage(fn, p, profile_ops: int = 0) -> tuple[float, float, int, float]:
    """(wall s, FLOPs, padding tokens, s inside the trainer's train()) of a training core run as its stage runs
    it. Loading the model and the data costs no metered FLOPs, so FLOPs / train() seconds is the training rate.
    With `profile_ops`, train() runs under torch.profiler and its most expensive ops are printed."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import Trainer

    inner, depth = [0.0], [0]
    train = Trainer.train

    @functools.wraps(train)
    def timed_train(self, *a, **k):  # the outermost call only (SFTTrainer and RewardTrainer may call up)
        depth[0] += 1
        prof = profile(activities=[ProfilerActivity.CPU]) if profile_ops and depth[0] == 1 else None
        t = time.perf_counter()
        try:
            with prof or contextlib.nullcontext():
                return train(self, *a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                inner[0] += time.perf_counter() - t
            if prof is not None:
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile_ops))

    Trainer.train = timed_train
    try:
        with tempfile.TemporaryDirectory() as tmp, ComputeMeter("bench") as meter:
            fn(p, paths.BASE, Path(tmp) / "out", tmp, meter)
    finally:
        Trainer.train = train
    r = meter.record
    return r.wall_s, r.flops, r.padding_tokens, inner[0]


def ppo_updates(p, updates: int) -> tuple[float, float, int, dict[str, float]]:
    """(wall s of train(), FLOPs, padding tokens, seconds per part) for `updates` PPO updates on the hybrid arm."""
    import torch
    from peft import LoraConfig, get_peft_model

    from safealign.data import load_benchmark, rl_prompts, train_split
    from safealign.models import load_policy, load_reward_model
    from safealign.train.ppo import ppo_trainer, prompt_dataset, trainer_config

    parts: dict[str, float] = collections.defaultdict(float)

    def timed(name: str, fn):
        @functools.wraps(fn)
        def call(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[name] += time.perf_counter() - t

        return call

    rows = rl_prompts(train_split(load_benchmark(p.data.dir, p.data.languages), p.data.train_languages))
    base, tok = load_policy(paths.SFT)
    torch.manual_seed(p.seed)
    policy = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **p.ppo.lora))
    reward_model, _ = load_reward_model(paths.REWARD)
    value_model, _ = load_reward_model(paths.REWARD)
    dataset = prompt_dataset(rows, tok, p.ppo.max_prompt_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        args = trainer_config(p, tmp)
        args.report_to = []
        args.total_episodes = updates * args.per_device_train_batch_size * args.gradient_accumulation_steps
        trainer = ppo_trainer(args, tok, policy, reward_model, value_model, dataset)
        T = sys.modules[type(trainer).__module__]  # TRL's PPO module (imported only by safealign.train.ppo)
        saved = (T.batch_generation, T.forward, T.get_reward)
        T.batch_generation = timed("rollout generation", T.batch_generation)
        T.forward = timed("policy / reference forward", T.forward)
        T.get_reward = timed("value and reward forward", T.get_reward)
        try:
            trainer.accelerator.backward = timed("backward", trainer.accelerator.backward)
            trainer.optimizer.step = timed("optimizer step", trainer.optimizer.step)
            with ComputeMeter("bench") as meter:
                for m in (policy, value_model, reward_model):
                    meter.watch(m)
                t = time.perf_counter()
                trainer.train()
                wall = time.perf_counter() - t
        finally:
            T.batch_generation, T.forward, T.get_reward = saved
    parts["other (TRL bookkeeping, logging)"] = wall - sum(parts.values())
    return wall, meter.record.flops, meter.record.padding_tokens, dict(parts)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--sft-steps", type=int, default=8)
    cli.add_argument("--reward-steps", type=int, default=8)
    cli.add_argument("--ppo-updates", type=int, default=2)
    cli.add_argument("--sft-variant", action="append", default=[], metavar="KEY=VALUE")
    cli.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest ops of train()")
    a = cli.parse_args()
    if bad := [x for x in a.sft_variant if "=" not in x]:
        cli.error(f"--sft-variant takes KEY=VALUE, got {bad}")
    variant = {k: yaml.safe_load(v) for k, _, v in (x.partition("=") for x in a.sft_variant)}
    from safealign.train.reward import train_reward
    from safealign.train.sft import train_sft

    peak = max(peak_gflops() for _ in range(3)) * 1e9
    print(f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    p = load_params(overrides={"sft.args.max_steps": a.sft_steps, "reward.args.max_steps": a.reward_steps})

    def line(name: str, wall: float, flops: float, padding: int) -> None:
        print(
            f"{name:<34} {wall:7.1f} s  {flops / 1e12:6.2f} TFLOP  {flops / wall / 1e9:6.1f} GFLOP/s "
            f"({flops / wall / peak:5.1%} of peak)  padding tokens {padding}"
        )

    runs = [("SFT", a.sft_steps, train_sft, p)]
    if variant:
        pv = load_params(overrides={"sft.args.max_steps": a.sft_steps, **variant})
        runs.append(("SFT " + " ".join(a.sft_variant), a.sft_steps, train_sft, pv))
    runs.append(("reward", a.reward_steps, train_reward, p))
    for name, steps, fn, params in runs:
        if steps:
            wall, flops, padding, inner = stage(fn, params, a.profile)
            line(f"{name}, {steps} steps (with loading)", wall, flops, padding)
            line(f"{name}, {steps} steps (train() only)", inner, flops, padding)
    if not a.ppo_updates:
        return
    wall, flops, padding, parts = ppo_updates(p, a.ppo_updates)
    line(f"PPO, {a.ppo_updates} updates (train() only)", wall, flops, padding)
    per = wall / a.ppo_updates
    print(f"  one PPO update: {per:.1f} s; at 100% of peak it would take {flops / a.ppo_updates / peak:.1f} s")
    for name, s in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<34} {s / a.ppo_updates:6.2f} s/update ({s / wall:5.1%})")


if __name__ == "__main__":
    main()
