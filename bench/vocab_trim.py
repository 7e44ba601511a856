"""What trimming Gemma-3-270M's vocabulary to the tokens our 12 languages use buys, and what it changes.

Gemma-3-270M has a 262,144-token vocabulary tied to a 640-wide embedding: 168M of its 268M parameters. The output
layer runs for every generated token and for every trained position, so it costs more than the 18 transformer
layers together (2 x 168M against 2 x 100M FLOPs per token). Issue 12 asks whether a vocabulary cut to the tokens
of our languages keeps the model fast enough to be the experiment's model. This script measures, on the real
weights, in one process and one run:

1. the kept vocabulary: every token id of the benchmark's texts (all fields, both splits, 12 languages) and of the
   annotated answers, plus the special tokens;
2. what it changes: greedy answers of the full model and of the trimmed one (the same weights, rows dropped) to
   held-out prompts in every language; the two are identical exactly while the full model's next token is in the
   kept set, so the script reports how often it was not, and how many answers differ;
3. what it buys: generation (batched, greedy) and one training step (forward + backward, LoRA-free, full
   sequence logits as SFT computes them), full against trimmed, median of repeats.

    python bench/vocab_trim.py [--model annotation/models/gemma_base] [--out bench/results/vocab_trim.json]

The model directory is Gemma base as fp32 safetensors (`python tools/annotation/prepare_models.py --only gemma`,
needs `make setup-gemma`). Nothing here changes the pipeline: trimming is not wired into any stage.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import unicodedata
from pathlib import Path

import numpy as np
import torch

from safealign.data import load_benchmark, read_jsonl

FRAME = "Question: {prompt}\nAnswer:"  # the base-model frame (safealign.models.BASE_CHAT_TEMPLATE)
LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]
TEXT_FIELDS = ("prompt", "reference", "compliant", "partial", "refusal", "answer")  # every text of a benchmark row


def corpus(bench: Path, labeled: Path) -> list[str]:
    df = load_benchmark(bench, LANGS)
    texts = [str(v) for f in TEXT_FIELDS if f in df.columns for v in df[f].dropna()]
    texts += [FRAME.format(prompt=p) + " " + str(r) for p, r in zip(df["prompt"], df["reference"])]  # as prompted
    for lang in LANGS:
        texts += [r["response"] for r in read_jsonl(labeled / f"{lang}.jsonl")]
    return texts


def kept_ids(tok, texts: list[str]) -> np.ndarray:
    ids = set(tok.all_special_ids)
    for start in range(0, len(texts), 512):
        for row in tok(texts[start : start + 512], add_special_tokens=False)["input_ids"]:
            ids.update(row)
    return np.array(sorted(ids))


SCRIPTS = ("LATIN", "CJK", "HIRAGANA", "KATAKANA", "CYRILLIC", "ARABIC", "DEVANAGARI", "BENGALI", "THAI", "DIGIT")
_BYTE = re.compile(r"^<0x[0-9A-F]{2}>$")


def _allowed(ch: str) -> bool:
    if unicodedata.category(ch)[0] in "PZSN" or ch in " \n\t\u2581":  # punctuation, spaces, symbols, numbers
        return True
    name = unicodedata.name(ch, "")
    return name.startswith(SCRIPTS) or "IDEOGRAPH" in name or name.startswith("FULLWIDTH")


def script_ids(tok) -> np.ndarray:
    """Every token written only in the scripts of our 12 languages (plus digits, punctuation, spaces, symbols),
    the byte-fallback tokens (so any text stays encodable) and the special tokens."""
    ids = set(tok.all_special_ids)
    for i, piece in enumerate(tok.convert_ids_to_tokens(list(range(len(tok))))):
        if piece is not None and (_BYTE.match(piece) or all(_allowed(c) for c in piece)):
            ids.add(i)
    return np.array(sorted(ids))


def trimmed(model, kept: np.ndarray):
    """A copy of the model whose embedding (and the tied output layer) keeps only the `kept` rows."""
    import copy

    small = copy.deepcopy(model)
    emb = small.get_input_embeddings()
    emb.weight = torch.nn.Parameter(emb.weight.data[torch.as_tensor(kept)].clone())
    emb.num_embeddings = len(kept)
    small.lm_head.weight = emb.weight
    small.config.vocab_size = small.vocab_size = small.model.vocab_size = len(kept)  # the loss reads vocab_size
    return small


def prompts_for(bench: Path, per_lang: int) -> list[str]:
    df = load_benchmark(bench, LANGS)
    df = df[(df.split == "eval") & (df.kind.isin(["benign", "harmful"]))]
    ids = sorted(df[df.lang == "en"]["id"])[: per_lang * 3 : 3]
    return [FRAME.format(prompt=p) for p in df[df.id.isin(ids)].sort_values(["lang", "id"])["prompt"]]


@torch.no_grad()
def generate(model, tok, prompts: list[str], new_tokens: int, batch: int, to_new=None, to_old=None):
    """Greedy continuations as lists of (full-vocabulary) token ids; input mapped into the trimmed ids if given."""
    tok.padding_side = "left"
    out = []
    for start in range(0, len(prompts), batch):
        enc = tok(prompts[start : start + batch], return_tensors="pt", padding=True)
        ids = enc["input_ids"] if to_new is None else torch.as_tensor(to_new[enc["input_ids"].numpy()])
        pad = tok.pad_token_id if to_new is None else int(to_new[tok.pad_token_id])
        eos = tok.eos_token_id if to_new is None else int(to_new[tok.eos_token_id])
        seqs = model.generate(
            input_ids=ids,
            attention_mask=enc["attention_mask"],
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=eos,
        )[:, ids.shape[1] :].numpy()
        out += [list(s) if to_old is None else list(to_old[s]) for s in seqs]
    return out


def train_step(model, ids: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="annotation/models/gemma_base")
    ap.add_argument("--bench", type=Path, default=Path("data/benchmark"))
    ap.add_argument("--labeled", type=Path, default=Path("data/labeled_real"))
    ap.add_argument("--per-lang", type=int, default=4, help="held-out prompts per language for the greedy check")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--keep",
        choices=["texts", "scripts"],
        default="texts",
        help="the kept set: tokens of our texts, or every token in the scripts of our languages",
    )
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    kept = kept_ids(tok, corpus(a.bench, a.labeled)) if a.keep == "texts" else script_ids(tok)
    to_new = np.full(len(tok), -1, dtype=np.int64)
    to_new[kept] = np.arange(len(kept))
    small = trimmed(model, kept).eval()
    res: dict = {
        "keep": a.keep,
        "vocab_full": model.config.vocab_size,
        "vocab_kept": len(kept),
        "params_full_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "params_trimmed_m": sum(p.numel() for p in small.parameters()) / 1e6,
        "threads": torch.get_num_threads(),
    }
    print(f"vocabulary: {len(kept):,} of {model.config.vocab_size:,} tokens kept", flush=True)

    # 2. what it changes: the full model's greedy tokens outside the kept set, and answers that differ
    prompts = prompts_for(a.bench, a.per_lang)
    full = generate(model, tok, prompts, a.new_tokens, a.batch)
    trim = generate(small, tok, prompts, a.new_tokens, a.batch, to_new, kept)
    outside = sum(int(to_new[t] < 0) for s in full for t in s)
    first_diff = [next((i for i, (x, y) in enumerate(zip(f, t)) if x != y), None) for f, t in zip(full, trim)]
    res["greedy"] = {
        "prompts": len(prompts),
        "new_tokens": a.new_tokens,
        "full_model_tokens_outside_kept": outside,
        "full_model_tokens": sum(len(s) for s in full),
        "answers_identical": sum(d is None for d in first_diff),
        "first_difference_at": [d for d in first_diff if d is not None],
    }
    print(json.dumps(res["greedy"]), flush=True)

    # 3. what it buys: generation and a training step, full against trimmed, alternating
    gen = prompts[: a.batch]
    res["generate_s"] = {
        "full": timed(lambda: generate(model, tok, gen, a.new_tokens, a.batch), a.repeats),
        "trimmed": timed(lambda: generate(small, tok, gen, a.new_tokens, a.batch, to_new, kept), a.repeats),
    }
    ids_full = torch.as_tensor(kept[np.random.default_rng(0).integers(0, len(kept), (8, 192))])
    ids_small = torch.as_tensor(to_new[ids_full.numpy()])
    model.train(), small.train()
    res["train_step_s"] = {
        "full": timed(lambda: train_step(model, ids_full), a.repeats),
        "trimmed": timed(lambda: train_step(small, ids_small), a.repeats),
    }
    for k in ("generate_s", "train_step_s"):
        res[k]["speedup"] = res[k]["full"] / res[k]["trimmed"]
    print(
        f"generation ({a.batch} prompts x {a.new_tokens} tokens): full {res['generate_s']['full']:.2f} s, trimmed "
        f"{res['generate_s']['trimmed']:.2f} s ({res['generate_s']['speedup']:.2f}x); training step (8 x 192): "
        f"full {res['train_step_s']['full']:.2f} s, trimmed {res['train_step_s']['trimmed']:.2f} s "
        f"({res['train_step_s']['speedup']:.2f}x)",
        flush=True,
    )
    if a.out:
        a.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
