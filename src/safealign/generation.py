"""Batched greedy generation from chat prompts: left padding, length-sorted batches, tqdm progress."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    gen_kwargs: dict[str, Any] | None = None,
    desc: str = "generate",
) -> list[str]:
    """Responses to user prompts, in input order. Prompts are sorted by length so each batch pads little."""
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    order = sorted(range(len(texts)), key=lambda i: len(tok(texts[i])["input_ids"]))
    out: list[str] = [""] * len(texts)
    tok.padding_side = "left"
    model.eval()
    kwargs = {
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        **(gen_kwargs or {}),
    }
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(model.device)
        seqs = model.generate(**enc, **kwargs)
        for i, seq in zip(idx, seqs[:, enc["input_ids"].shape[1] :]):
            out[i] = tok.decode(seq, skip_special_tokens=True).strip()
    return out
