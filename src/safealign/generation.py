"""Batched generation from chat prompts: left padding, length-sorted batches, one tokenization per prompt.

Prompts are rendered with the chat template and tokenized once (cached: the safety curve asks the same prompts at
every checkpoint), sorted by length so each batch pads little, and padded on the left in one call. Greedy outputs
are identical to rendering the template to text and tokenizing that (bench/generation.py checks it).

With `batch_tokens`, a batch also holds at most that many padded prompt tokens (rows x its longest prompt): short
prompts go in batches of `batch_size`, long ones (a Bengali prompt is several times the tokens of its English
twin) in smaller batches. On the default evaluation set this cut prefill padding from 12.4k to 3.7k positions and
generation from 228 s to 192 s with the same greedy answers (bench/eval_batching.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from tqdm.auto import tqdm


@lru_cache(maxsize=8)
def _encoder(tok):
    @lru_cache(maxsize=65536)
    def encode(prompt: str) -> tuple[int, ...]:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        return tuple(ids)

    return encode


def encode_prompts(tok, prompts: list[str]) -> list[tuple[int, ...]]:
    """Token ids of each user prompt under the chat template, generation prompt included (cached per tokenizer)."""
    encode = _encoder(tok)
    return [encode(p) for p in prompts]


def length_batches(lengths: list[int], batch_size: int, batch_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length: sorted by length, at most `batch_size` rows and, with
    `batch_tokens`, at most that many padded tokens (rows x the longest); a longer prompt still gets a batch alone."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        cur = batches[-1] if batches else None
        full = cur is None or len(cur) >= batch_size or (batch_tokens and (len(cur) + 1) * lengths[i] > batch_tokens)
        if full:
            batches.append([i])
        else:
            cur.append(i)
    return batches


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    gen_kwargs: dict[str, Any] | None = None,
    desc: str = "generate",
    batch_tokens: int | None = None,
) -> list[str]:
    """Responses to user prompts, in input order."""
    ids = encode_prompts(tok, prompts)
    out: list[str] = [""] * len(ids)
    tok.padding_side = "left"
    model.eval()
    kwargs = {
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        **(gen_kwargs or {}),
    }
    for idx in tqdm(length_batches([len(x) for x in ids], batch_size, batch_tokens), desc=desc, unit="batch"):
        enc = tok.pad({"input_ids": [list(ids[i]) for i in idx]}, return_tensors="pt", padding=True)
        enc = enc.to(model.device)
        seqs = model.generate(**enc, **kwargs)
        for i, seq in zip(idx, seqs[:, enc["input_ids"].shape[1] :]):
            out[i] = tok.decode(seq, skip_special_tokens=True).strip()
    return out
