"""Training throughput of our SFT and PPO stages against bare TRL scripts with the same settings (target >= 0.97).

Ours: the stage functions as the pipeline runs them (compute-meter hooks, MLflow reporting, and for PPO the
resumable segments with checkpoints; the safety-curve scoring is reported separately, as it is measurement).
Bare: SFTTrainer / PPOTrainer built from the same params, no hooks, no reporting, one train() call.
Same model (models/base, reward model models/reward from a previous run), data, seed and batch composition, so
steps per second compare like tokens per second. Usage: python bench/train_throughput.py [sft_steps] [ppo_episodes]
"""

import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safealign.compute import ComputeMeter  # noqa: E402
from safealign.config import load_params  # noqa: E402
from safealign.data import load_benchmark, rl_prompts, sft_rows, train_split  # noqa: E402
from safealign.models import load_policy  # noqa: E402


def bare_sft(p, tmp: str) -> float:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTTrainer

    from safealign.train.sft import trainer_config

    df = load_benchmark(p.data.dir, p.data.languages)
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"]}
        for r in sft_rows(train_split(df, p.data.train_languages))
    ]
    model, tok = load_policy("models/base")
    args = trainer_config(p, tmp)
    args.report_to = []
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(task_type="CAUSAL_LM", **p.sft.lora),
    )
    t = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t


def ours_sft(p, tmp: str) -> float:
    from safealign.train.sft import train_sft

    with ComputeMeter("sft") as meter:
        t = time.perf_counter()
        train_sft(p, "models/base", Path(tmp) / "out", tmp, meter)
        return time.perf_counter() - t


def bare_ppo(p, tmp: str) -> tuple[float, float]:
    """(train() seconds, seconds including model loading and setup: the scope our stage function is timed in)"""
    t0 = time.perf_counter()
    from peft import LoraConfig, get_peft_model

    from safealign.models import load_reward_model
    from safealign.train.ppo import ppo_trainer, prompt_dataset, trainer_config

    df = load_benchmark(p.data.dir, p.data.languages)
    rows = rl_prompts(train_split(df, p.data.train_languages))
    base, tok = load_policy("models/sft")
    policy = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **p.ppo.lora))
    reward_model, _ = load_reward_model("models/reward")
    value_model, _ = load_reward_model("models/reward")
    dataset = prompt_dataset(rows, tok, p.ppo.max_prompt_tokens)
    args = trainer_config(p, tmp)
    args.report_to = []
    trainer = ppo_trainer(args, tok, policy, reward_model, value_model, dataset)
    t = time.perf_counter()
    trainer.train()
    end = time.perf_counter()
    return end - t, end - t0


def ours_ppo(p, tmp: str) -> tuple[float, float]:
    from safealign.curve import SafetyCurve
    from safealign.train.ppo import train_ppo

    SafetyCurve.save = lambda *a, **k: None  # keep the pipeline's metrics/curves untouched
    with ComputeMeter("ppo") as meter:
        t = time.perf_counter()
        train_ppo(p, "hybrid", Path(tmp) / "out", str(Path(tmp) / "ckpt"), meter)
        wall = time.perf_counter() - t
    return wall, meter.record.extra.get("excluded_measurement", {}).get("wall_s", 0.0)


if __name__ == "__main__":
    sft_steps = int(sys.argv[1]) if len(sys.argv) > 1 else 8  # 0: PPO only
    episodes = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    overrides = {"sft.args.max_steps": max(sft_steps, 1), "ppo.args.total_episodes": episodes}
    if len(sys.argv) > 3:  # PPO checkpoint segment length (0: one segment, no checkpoints), to price resumability
        overrides["ppo.checkpoint_every"] = int(sys.argv[3])
    p = load_params(overrides=overrides)
    import os

    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    if sft_steps:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            bare = bare_sft(p, a)
            ours = ours_sft(p, b)
        print(
            f"SFT, {sft_steps} steps x batch {p.sft.args.get('per_device_train_batch_size')}: bare TRL {bare:.1f}s "
            f"({sft_steps / bare:.3f} steps/s), ours {ours:.1f}s "
            f"({sft_steps / ours:.3f} steps/s), ratio {bare / ours:.3f}"
        )
    updates = math.ceil(episodes / p.ppo.args["per_device_train_batch_size"])
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        bare, bare_setup = bare_ppo(p, a)
        ours, curve = ours_ppo(p, b)
    every = p.ppo.checkpoint_every or "never"
    print(
        f"PPO, {updates} updates (hybrid start, checkpoint every {every}): bare TRL train() {bare:.1f}s "
        f"({bare_setup:.1f}s with loading), ours {ours:.1f}s with loading, of which safety-curve scoring {curve:.1f}s; "
        f"ratio without the curve {bare / (ours - curve):.3f} ({bare_setup / (ours - curve):.3f} counting loading "
        f"on both sides), with it {bare / ours:.3f}"
    )
