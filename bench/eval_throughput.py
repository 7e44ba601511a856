"""Batched generation (our evaluate stage) vs one prompt at a time, same prompts, model and settings."""

import sys
import time

import torch

from safealign.config import load_params
from safealign.data import eval_items, load_benchmark
from safealign.generation import generate
from safealign.models import load_policy


def bench_prompts(p, n: int = 32) -> list[str]:
    """The first n of a fixed held-out slice (2 harmful + 1 benign per language)."""
    items = eval_items(
        load_benchmark(p.data.dir, p.data.languages), p.data.languages, {"harmful": 2, "benign": 1}, p.seed
    )
    return items["prompt"].tolist()[:n]


def batched_vs_single(
    model, tok, prompts: list[str], max_new_tokens: int, batch_size: int, fixed_length: bool = False
) -> dict:
    """Seconds for `prompts` at `batch_size` and at 1 (after a warm-up); `fixed_length` makes every answer exactly
    max_new_tokens long (random weights rarely emit EOS, trained ones do: fix it to compare tokens/s)."""
    kwargs = {"min_new_tokens": max_new_tokens} if fixed_length else None
    generate(model, tok, prompts[:2], 8, 2)  # warm-up
    times = {}
    for bs in (batch_size, 1):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        generate(model, tok, prompts, max_new_tokens, bs, gen_kwargs=kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times[bs] = time.perf_counter() - t
    return {
        "prompts": len(prompts),
        "new_tokens_each": max_new_tokens,
        "batch_size": batch_size,
        "batched_s": times[batch_size],
        "one_at_a_time_s": times[1],
        "speedup": times[1] / times[batch_size],
    }


if __name__ == "__main__":
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/base"
    p = load_params()
    model, tok = load_policy(model_dir)
    r = batched_vs_single(model, tok, bench_prompts(p), p.evaluate.max_new_tokens, p.evaluate.batch_size)
    print(
        f"{r['prompts']} prompts x {r['new_tokens_each']} new tokens on {model_dir}: batched (batch "
        f"{r['batch_size']}) {r['batched_s']:.1f}s, one at a time {r['one_at_a_time_s']:.1f}s, "
        f"speed-up {r['speedup']:.1f}x"
    )
