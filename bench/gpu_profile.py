"""GPU profile: the pipeline's own training stages (SFT, reward model, PPO) and its batched generation, run on a GPU
and measured with the pipeline's compute meter: tokens, FLOPs, achieved FLOP/s against the GPU's datasheet bf16
peak, peak GPU memory, GPU-hours and money at the prices in params.yaml.

Weights: `--model DIR`, a local safetensors model directory (e.g. DeepSeek-R1-Distill-Qwen-1.5B fetched
beforehand), or `--shape NAME`: random weights in a named architecture with the tokenizer of `--tokenizer DIR`
(default models/base). Random weights cost the same FLOPs, memory and time as trained ones, so the profile is
valid; what they say about safety is meaningless, and it is not reported.

Usage (repository root; trl, datasets, peft, transformers installed; no MLflow, DVC or Prefect needed):
    python bench/gpu_profile.py --shape r1-distill-qwen-1.5b --out gpu_profile.json   # params.yaml's steps, batch 8
    python bench/gpu_profile.py --shape r1-distill-qwen-1.5b --batch 32 --ppo-episodes 256
    python bench/gpu_profile.py --model /models/DeepSeek-R1-Distill-Qwen-1.5B --sft-steps 50
Runs in a temporary work directory (models/, checkpoints/), so the repository's models and metrics stay as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402
from eval_throughput import batched_vs_single, bench_prompts  # noqa: E402

from safealign.compute import ComputeMeter, ModelShape, gpu_peak_flops, money  # noqa: E402
from safealign.config import ENV_DEFAULTS, load_params  # noqa: E402

for k, v in ENV_DEFAULTS.items():  # offline and quiet, as every stage runs
    os.environ.setdefault(k, v)

# Architectures by name (config fields from the models' published config.json); the vocabulary is the tokenizer's.
SHAPES = {
    "smollm2-135m": (
        "llama",
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            tie_word_embeddings=True,
            rope_theta=100000.0,
        ),
    ),
    "r1-distill-qwen-1.5b": (
        "qwen2",
        dict(
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            rope_theta=10000.0,
        ),
    ),
}


def build_shape(name: str, tokenizer_dir: Path, out: Path) -> None:
    """Random weights with the architecture `name`, saved as a pipeline base model (safetensors + lineage)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from safealign.models import _fix_pad, load_tokenizer, write_lineage

    kind, fields = SHAPES[name]
    tok = load_tokenizer(tokenizer_dir)
    cfg = AutoConfig.for_model(
        kind,
        vocab_size=len(tok),
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **fields,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    _fix_pad(tok, model)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_lineage(out, kind="full", parent=None, stage="prepare_model", extra={"profile": f"shape:{name}"})


def no_tracking(*modules) -> None:
    """The stages report to MLflow through the trainers; here nothing is tracked (MLflow need not be installed)."""
    for mod in modules:
        make = mod.trainer_config

        def quiet(params, output_dir, make=make):
            args = make(params, output_dir)
            args.report_to = []
            return args

        mod.trainer_config = quiet


def row(stage: str, rec: dict, peak: float | None, params) -> dict:
    r = dict(rec)
    r["achieved_flops_per_s"] = r["flops"] / r["wall_s"] if r["wall_s"] else None
    r["fraction_of_peak"] = r["achieved_flops_per_s"] / peak if peak and r["achieved_flops_per_s"] else None
    r["usd"] = money(r, params.cost.usd_per_cpu_hour, params.cost.usd_per_gpu_hour)
    tokens = r["trained_tokens"] or r["forward_tokens"]
    r["tokens_per_s"] = tokens / r["wall_s"] if r["wall_s"] else None
    print(
        f"{stage:<14} {r['wall_s']:7.1f}s  {r['flops'] / 1e12:9.2f} TFLOP  "
        f"{(r['achieved_flops_per_s'] or 0) / 1e12:7.2f} TFLOP/s"
        + (f" ({r['fraction_of_peak']:.1%} of peak)" if r["fraction_of_peak"] else "")
        + f"  {r['tokens_per_s'] or 0:9.0f} tok/s  peak mem {r['peak_gpu_mb'] / 1024:6.2f} GiB"
        f"  {r['gpu_s'] / 3600:.4f} GPU-h  ${r['usd']:.4f}",
        flush=True,
    )
    return r


def generation_speed(model_dir: str, params, n: int) -> dict:
    """Batched vs one-at-a-time generation (bench/eval_throughput.py's measurement) in bf16 on the GPU."""
    from safealign.models import device, load_policy

    model, tok = load_policy(model_dir, device=device())
    if torch.cuda.is_available():
        model.to(torch.bfloat16)
    out = batched_vs_single(
        model,
        tok,
        bench_prompts(params, n),
        params.evaluate.max_new_tokens,
        params.evaluate.batch_size,
        fixed_length=True,
    )
    tokens = out["prompts"] * out["new_tokens_each"]
    out |= {
        "batched_tokens_per_s": tokens / out["batched_s"],
        "one_at_a_time_tokens_per_s": tokens / out["one_at_a_time_s"],
    }
    print(
        f"generation     {out['prompts']} prompts x {out['new_tokens_each']} tokens: batch {out['batch_size']} "
        f"{out['batched_s']:.1f}s ({out['batched_tokens_per_s']:.0f} "
        f"tok/s), one at a time {out['one_at_a_time_s']:.1f}s, "
        f"speed-up {out['speedup']:.1f}x",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="local safetensors model directory")
    src.add_argument("--shape", choices=sorted(SHAPES), help="random weights in this architecture")
    ap.add_argument("--tokenizer", default="models/base", help="tokenizer directory for --shape (default models/base)")
    ap.add_argument("--sft-steps", type=int, default=None, help="default: params.yaml")
    ap.add_argument("--reward-steps", type=int, default=None, help="default: params.yaml")
    ap.add_argument("--ppo-episodes", type=int, default=None, help="default: params.yaml")
    ap.add_argument("--batch", type=int, default=None, help="per-device batch of every stage (default: params.yaml)")
    ap.add_argument("--gen-prompts", type=int, default=32)
    ap.add_argument("--out", default=None, help="write the profile as JSON here")
    a = ap.parse_args()

    overrides = {"ppo.checkpoint_every": 0, "curve.items_per_language": 0, "data.dir": str(REPO / "data/benchmark")}
    for key, value in (
        ("sft.args.max_steps", a.sft_steps),
        ("reward.args.max_steps", a.reward_steps),
        ("ppo.args.total_episodes", a.ppo_episodes),
    ):
        if value is not None:
            overrides[key] = value
    if a.batch:
        overrides |= {
            "sft.args.per_device_train_batch_size": a.batch,
            "reward.args.per_device_train_batch_size": a.batch,
            "ppo.args.per_device_train_batch_size": a.batch,
            "ppo.args.local_rollout_forward_batch_size": a.batch,
        }
    params = load_params(REPO / "params.yaml", overrides)
    tokenizer_dir = Path(a.tokenizer).resolve()
    model_dir = Path(a.model).resolve() if a.model else None

    from safealign.train import ppo, reward, sft

    no_tracking(sft, reward, ppo)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    peak = gpu_peak_flops(name) if torch.cuda.is_available() else None
    print(
        f"device {name}; bf16 peak {peak / 1e12 if peak else float('nan'):.1f} TFLOP/s (datasheet); "
        f"torch {torch.__version__}",
        flush=True,
    )
    result: dict = {"device": name, "peak_bf16_flops": peak, "torch": torch.__version__, "stages": {}}
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        base = Path("models/base")
        t = time.perf_counter()
        if model_dir:
            base.parent.mkdir(parents=True)
            base.symlink_to(model_dir)
            if not (model_dir / "safealign.json").exists():
                raise SystemExit(
                    f"{model_dir}: not a pipeline model (no safealign.json); run prepare_model on it first"
                )
        else:
            build_shape(a.shape, tokenizer_dir, base)
        from transformers import AutoConfig, AutoModelForCausalLM

        with torch.device("meta"):  # the shape without reading the weights a second time
            shape = ModelShape.of(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base)))
        result["model"] = {
            "source": str(model_dir or f"shape:{a.shape}"),
            "params": shape.params,
            "layers": shape.layers,
            "width": shape.width,
            "build_s": time.perf_counter() - t,
        }
        print(
            f"model {result['model']['source']}: {shape.params / 1e6:.1f}M parameters, {shape.layers} layers, "
            f"width {shape.width}",
            flush=True,
        )
        steps = [
            ("sft", lambda m: sft.train_sft(params, "models/base", Path("models/sft"), "checkpoints/sft", m)),
            (
                "reward",
                lambda m: reward.train_reward(params, "models/base", Path("models/reward"), "checkpoints/reward", m),
            ),
            ("ppo@hybrid", lambda m: ppo.train_ppo(params, "hybrid", Path("models/ppo/hybrid"), "checkpoints/ppo", m)),
        ]
        for stage, fn in steps:
            with ComputeMeter(stage) as meter:
                summary = fn(meter)
            meter.record.save(f"metrics/compute/{stage.replace('@', '_')}.json")  # where lineage points
            rec = meter.record.to_dict()
            result["stages"][stage] = row(stage, rec, peak, params) | {
                "summary": {k: v for k, v in summary.items() if k not in ("history", "accuracy")}
            }
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        result["generation"] = generation_speed("models/sft", params, a.gen_prompts)
    result["settings"] = {k: v for k, v in overrides.items() if k != "data.dir"} | {
        "sft.args.max_steps": params.sft.args["max_steps"],
        "reward.args.max_steps": params.reward.args["max_steps"],
        "ppo.args.total_episodes": params.ppo.args["total_episodes"],
    }
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
