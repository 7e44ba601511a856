"""Batched generation (our evaluate stage) vs one prompt at a time, same prompts, model and settings."""

import sys
import time

from safealign.config import load_params
from safealign.data import eval_items, load_benchmark
from safealign.generation import generate
from safealign.models import load_policy

if __name__ == "__main__":
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/base"
    p = load_params()
    items = eval_items(load_benchmark(p.data.dir, p.data.languages), p.data.languages, {"harmful": 2, "benign": 1}, p.seed)
    prompts = items["prompt"].tolist()[:32]
    model, tok = load_policy(model_dir)
    generate(model, tok, prompts[:2], 8, 2)  # warm-up
    t = time.perf_counter()
    generate(model, tok, prompts, p.evaluate.max_new_tokens, p.evaluate.batch_size)
    batched = time.perf_counter() - t
    t = time.perf_counter()
    generate(model, tok, prompts, p.evaluate.max_new_tokens, 1)
    single = time.perf_counter() - t
    print(f"{len(prompts)} prompts x {p.evaluate.max_new_tokens} new tokens on {model_dir}: batched (batch "
          f"{p.evaluate.batch_size}) {batched:.1f}s, one at a time {single:.1f}s, speed-up {single / batched:.1f}x")
