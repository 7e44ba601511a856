"""The evaluate stage's two model passes, before and after, on the default evaluation set (every arm's prompts):

1. generation: batches of `evaluate.batch_size` rows sorted by prompt length (before) against the same batches
   capped at `evaluate.batch_tokens` padded prompt tokens (after). The eval set mixes 41-token English prompts with
   350-token Bengali ones, so a batch of 64 pads most of its prefill. Greedy answers must be identical.
2. reward scoring (`safealign.models.score`, also the detect stage's reference row): batches sorted by characters
   (before) against sorted by tokens (after). Scores must agree to float rounding.

    python bench/eval_batching.py [--model models/base]

The reward pass runs the base model with a fresh score head (same shapes and FLOPs as models/reward), so the bench
needs only the prepare_model stage. Prints wall seconds, padded positions and the equality checks.
"""

from __future__ import annotations

import argparse
import time

import torch

from safealign.config import load_params
from safealign.evaluation import eval_prompts
from safealign.generation import encode_prompts, generate, length_batches
from safealign.models import load_policy, load_reward_model, score


@torch.no_grad()
def score_by_chars(model, tok, prompts, responses, batch_size=16, max_length=256):
    """safealign.models.score as it was: texts sorted by characters, tokenized per batch."""
    texts = [
        tok.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
        for p, r in zip(prompts, responses)
    ]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out, padded = [0.0] * len(texts), 0
    tok.truncation_side = "left"
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        padded += int(enc["attention_mask"].numel() - enc["attention_mask"].sum())
        for i, v in zip(idx, model(**enc).logits[:, 0].tolist()):
            out[i] = v
    return out, padded


def padding(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/base")
    a = ap.parse_args()
    p = load_params()
    ev = p.evaluate
    prompts = eval_prompts(p)["prompt"].tolist()
    model, tok = load_policy(a.model)
    lengths = [len(x) for x in encode_prompts(tok, prompts)]
    print(
        f"{len(prompts)} prompts, {sum(lengths)} prompt tokens ({min(lengths)}-{max(lengths)} per prompt), "
        f"{ev.max_new_tokens} new tokens, {torch.get_num_threads()} threads"
    )
    answers = {}
    for name, budget in (("before: rows only", None), (f"after: <= {ev.batch_tokens} tokens", ev.batch_tokens)):
        batches = length_batches(lengths, ev.batch_size, budget)
        t = time.perf_counter()
        answers[name] = generate(model, tok, prompts, ev.max_new_tokens, ev.batch_size, batch_tokens=budget)
        print(
            f"generation, {name:24s}: {time.perf_counter() - t:6.1f} s, {len(batches)} batches, "
            f"{padding(lengths, batches)} padded prefill positions"
        )
    before, after = answers.values()
    print(f"greedy answers identical: {sum(x == y for x, y in zip(before, after))}/{len(prompts)}")
    del model
    rm, rm_tok = load_reward_model(a.model)
    chats = [[{"role": "user", "content": q}] for q in prompts]
    t = time.perf_counter()
    old, padded = score_by_chars(rm, rm_tok, chats, after)
    print(f"reward scoring, sorted by characters: {time.perf_counter() - t:6.1f} s, {padded} padded positions")
    t = time.perf_counter()
    new = score(rm, rm_tok, chats, after)
    print(f"reward scoring, sorted by tokens:     {time.perf_counter() - t:6.1f} s")
    print(f"largest score difference: {max(abs(x - y) for x, y in zip(old, new)):.2e}")


if __name__ == "__main__":
    main()
