"""Batched generation at the machine's limit: achieved FLOP/s of prefill and decode against the measured matmul
peak, tokens/s by batch size, and where the time goes. Prints the reference path (safealign.generation as it was:
chat template rendered to text, tokenized twice) and the fast path side by side, and checks that greedy outputs
are identical.

    python bench/generation.py [--model models/base] [--prompts 64] [--new-tokens 40] [--batches 8,32,64]

FLOPs per token follow safealign.compute (2N + 4·L·d·T forward); prefill is the first forward of each batch,
decode every later one. The peak is bench/cpu_peak.py's 2048^3 fp32 matmul on all threads, measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_peak import peak_gflops  # noqa: E402

from safealign.compute import ModelShape  # noqa: E402
from safealign.config import load_params  # noqa: E402
from safealign.data import eval_items, load_benchmark  # noqa: E402
from safealign.generation import generate  # noqa: E402
from safealign.models import load_policy  # noqa: E402


@torch.no_grad()
def reference_generate(model, tok, prompts, max_new_tokens, batch_size):
    """safealign.generation.generate as of 588a661 (the path every stage used before the fast path)."""
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    order = sorted(range(len(texts)), key=lambda i: len(tok(texts[i])["input_ids"]))
    out = [""] * len(texts)
    tok.padding_side = "left"
    model.eval()
    kwargs = {
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        seqs = model.generate(**enc, **kwargs)
        for i, seq in zip(idx, seqs[:, enc["input_ids"].shape[1] :]):
            out[i] = tok.decode(seq, skip_special_tokens=True).strip()
    return out


class PhaseTimer:
    """Forward pre/post hooks on the backbone: time and FLOPs of prefill (a forward with more than one new token
    per sequence) and decode (one new token per sequence), real tokens only."""

    def __init__(self, model):
        self.shape = ModelShape.of(model)
        self.stats = {"prefill": [0.0, 0.0, 0], "decode": [0.0, 0.0, 0]}  # seconds, flops, tokens
        backbone = getattr(model, "model", model)
        self._h = [
            backbone.register_forward_pre_hook(self._pre, with_kwargs=True),
            backbone.register_forward_hook(self._post, with_kwargs=True),
        ]

    def _pre(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        past = kwargs.get("past_key_values")
        mask = kwargs.get("attention_mask")
        new = ids.shape[1]
        span = new + (past.get_seq_length() if past is not None and hasattr(past, "get_seq_length") else 0)
        real = int(mask[:, -new:].sum()) if mask is not None else ids.numel()
        self._phase = "prefill" if new > 1 else "decode"
        self._flops, self._tokens = real * self.shape.flops_per_token(span, backward=False), real
        self._t0 = time.perf_counter()

    def _post(self, module, args, kwargs, output):
        s = self.stats[self._phase]
        s[0] += time.perf_counter() - self._t0
        s[1] += self._flops
        s[2] += self._tokens

    def remove(self):
        for h in self._h:
            h.remove()


def run(fn, model, tok, prompts, new_tokens, batch):
    timer = PhaseTimer(model)
    t = time.perf_counter()
    texts = fn(model, tok, prompts, new_tokens, batch)
    wall = time.perf_counter() - t
    timer.remove()
    (pre_s, pre_f, pre_t), (dec_s, dec_f, dec_t) = timer.stats["prefill"], timer.stats["decode"]
    return texts, {
        "batch": batch,
        "wall_s": wall,
        "new_tokens": dec_t + len(prompts),
        "new_tokens_per_s": (dec_t + len(prompts)) / wall,
        "prefill_s": pre_s,
        "prefill_gflops": pre_f / pre_s / 1e9 if pre_s else None,
        "prefill_tokens": pre_t,
        "decode_s": dec_s,
        "decode_gflops": dec_f / dec_s / 1e9 if dec_s else None,
        "overall_gflops": (pre_f + dec_f) / wall / 1e9,
        "outside_forward_s": wall - pre_s - dec_s,
    }


def profile(model, tok, prompts, new_tokens, batch):
    """Self CPU time by operator for one fast-path run (torch.profiler), grouped into matmul, attention, cache,
    elementwise, sampling and the rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        generate(model, tok, prompts, new_tokens, batch)
    groups = {
        "matmul": ("mm", "addmm", "bmm", "linear", "matmul"),
        "attention": ("scaled_dot_product", "flash"),
        "cache": ("cat", "index_copy", "copy_", "slice"),
        "sampling": ("argmax", "topk", "softmax", "multinomial", "sort"),
        "elementwise": ("mul", "add", "silu", "pow", "mean", "rsqrt", "neg", "sin", "cos", "div", "where", "sum"),
    }
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    out = {g: 0.0 for g in groups} | {"other": 0.0}
    for e in prof.key_averages():
        name = e.key.removeprefix("aten::")
        g = next((g for g, keys in groups.items() if any(name == k or name.startswith(k) for k in keys)), "other")
        out[g] += e.self_cpu_time_total
    return {g: v / total for g, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--batches", default="8,32,64")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    p = load_params()
    items = eval_items(
        load_benchmark(p.data.dir, p.data.languages), p.data.languages, {"harmful": 14, "benign": 4}, p.seed
    )
    prompts = items["prompt"].tolist()[: a.prompts]
    model, tok = load_policy(a.model)
    model.eval()
    peak = max(peak_gflops() for _ in range(3))
    print(
        f"fp32 matmul peak: {peak:.1f} GFLOP/s ({torch.get_num_threads()} threads); {len(prompts)} prompts x "
        f"{a.new_tokens} new tokens on {a.model} ({ModelShape.of(model).params / 1e6:.1f}M parameters)"
    )
    generate(model, tok, prompts[:4], 4, 4)  # warm-up (and compilation, where the fast path compiles)
    results = {"peak_gflops": peak, "runs": []}
    for batch in (int(b) for b in a.batches.split(",")):
        ref_texts, ref = run(reference_generate, model, tok, prompts, a.new_tokens, batch)
        fast_texts, fast = run(generate, model, tok, prompts, a.new_tokens, batch)
        same = sum(x == y for x, y in zip(ref_texts, fast_texts))
        results["runs"].append({"reference": ref, "fast": fast, "identical_outputs": same, "prompts": len(prompts)})
        for name, r in (("reference", ref), ("fast", fast)):
            print(
                f"batch {batch:3d} {name:9s}: {r['wall_s']:6.1f}s  {r['new_tokens_per_s']:6.1f} new tok/s  "
                f"prefill {r['prefill_gflops'] or 0:5.1f} GFLOP/s ({(r['prefill_gflops'] or 0) / peak:4.0%})  "
                f"decode {r['decode_gflops'] or 0:5.1f} GFLOP/s ({(r['decode_gflops'] or 0) / peak:4.0%})  "
                f"overall {r['overall_gflops']:5.1f} ({r['overall_gflops'] / peak:4.0%})  "
                f"outside the model {r['outside_forward_s']:.1f}s"
            )
        print(f"batch {batch:3d} greedy outputs identical: {same}/{len(prompts)}")
    share = profile(model, tok, prompts, a.new_tokens, int(a.batches.split(",")[-1]))
    results["profile_self_cpu_share"] = share
    print("where the time goes (self CPU):", ", ".join(f"{k} {v:.0%}" for k, v in share.items()))
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
