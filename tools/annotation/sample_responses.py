"""Sample real model answers to annotate (data/labeled_real): every arm, RL checkpoints, greedy and sampled.

A one-off data-building tool, not a pipeline stage: it wrote the pool that annotators read in December 2026 and
is kept so the pool can be rebuilt. Run it from a repository where the default pipeline has trained the arms
(models/base, models/sft, models/ppo/*, models/grpo/*):

    python tools/annotation/sample_responses.py --out annotation/pool [--source NAME ...]

Design (see data/labeled_real/README.md):
- prompts: every harmful item of both splits (14 categories x 3 items x 2 splits) and 8 benign items per split
  (4 look-alikes, 4 everyday), in all 12 languages; the same ids in every language.
- each harmful item gets one answer from a trained arm or an RL checkpoint, and a seeded half of them a second
  answer from a source that complies often (a deliberately compliant fine-tune; Gemma-3-270M base), so that
  recall can be measured in every language; benign items get one answer from an arm and one from Gemma-3-270M
  base (whether a candidate model writes a language at all is measured on benign answers).
- decoding alternates greedy and sampled (temperature 0.7, as the RL rollouts), 40 new tokens as in evaluation.
- the annotators never see the source; it is kept here for the data card and the per-arm judge check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
from pathlib import Path

import torch

from safealign.data import load_benchmark, read_jsonl
from safealign.generation import generate
from safealign.models import load_policy

LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]
ARMS = {  # source -> model directory (lineage resolves adapters); checkpoints are PPO segments at update 4 of 8
    "smollm2/base": "models/base",
    "smollm2/sft_only": "models/sft",
    "smollm2/pure_rl": "models/ppo/pure_rl",
    "smollm2/hybrid": "models/ppo/hybrid",
    "smollm2/hybrid_grpo": "models/grpo/hybrid_grpo",
    "smollm2/ppo_pure_rl@update4": "annotation/models/ppo_pure_rl_u4",
    "smollm2/ppo_hybrid@update4": "annotation/models/ppo_hybrid_u4",
}
COMPLIANT = {  # sources that comply often: recall needs harmful answers in every language
    "smollm2/compliant_sft": "annotation/models/compliant_sft",
    "gemma3-270m/base": "annotation/models/gemma_base",
}
MAX_NEW_TOKENS, TEMPERATURE, SEED = 40, 0.7, 20261201
BASE_PROMPT = "Question: {prompt}\nAnswer:"  # a base model has no chat template: a plain Q/A frame
_STOP = re.compile(r"\n\s*(Question|Q)\s*:|\n{3,}")
log = logging.getLogger("sample")


def plan(data_dir: str) -> list[dict]:
    """The (item, language, source, decoding) slots to answer, seeded and parallel across languages."""
    df = load_benchmark(data_dir, LANGS)
    rng = random.Random(SEED)
    arm_names, compliant_names = sorted(ARMS), sorted(COMPLIANT)
    slots = []
    for split in ("train", "eval"):
        ids = df[(df.split == split) & (df.lang == "en")]
        harmful = sorted(ids[ids.kind == "harmful"]["id"])
        benign = sorted(rng.sample(sorted(ids[(ids.kind == "benign") & (ids.category == "lookalike")]["id"]), 4))
        benign += sorted(rng.sample(sorted(ids[(ids.kind == "benign") & (ids.category == "general")]["id"]), 4))
        for lang in LANGS:
            for i, item in enumerate(harmful):
                slots.append((item, lang, arm_names[(i + LANGS.index(lang)) % len(arm_names)]))
            for item in rng.sample(harmful, len(harmful) // 2):
                slots.append((item, lang, rng.choice(compliant_names)))
            for i, item in enumerate(benign):
                slots.append((item, lang, arm_names[(i + 2 * LANGS.index(lang)) % len(arm_names)]))
                slots.append((item, lang, "gemma3-270m/base"))  # its competence per language (issue: model choice)
    rows = df.set_index(["id", "lang"])
    out = []
    for item, lang, source in slots:
        r = rows.loc[(item, lang)]
        uid = "real-" + hashlib.sha1(f"{item}|{lang}|{source}".encode()).hexdigest()[:10]
        decoding = "greedy" if int(uid[-1], 16) % 2 == 0 else "sampled"
        out.append(
            {
                "uid": uid,
                "id": item,
                "lang": lang,
                "kind": r.kind,
                "category": r.category,
                "split": r.split,
                "source": source,
                "decoding": decoding,
                "prompt": r.prompt,
            }
        )
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def answer(model_dir: str, slots: list[dict], base_model: bool) -> list[str]:
    model, tok = load_policy(model_dir)
    out = [""] * len(slots)
    for decoding in ("greedy", "sampled"):
        idx = [i for i, s in enumerate(slots) if s["decoding"] == decoding]
        if not idx:
            continue
        torch.manual_seed(SEED)
        kwargs = (
            {"do_sample": True, "temperature": TEMPERATURE, "top_k": 0, "top_p": 1.0} if decoding == "sampled" else {}
        )
        prompts = [slots[i]["prompt"] for i in idx]
        if base_model:
            texts = generate_plain(model, tok, [BASE_PROMPT.format(prompt=p) for p in prompts], kwargs)
        else:
            texts = generate(model, tok, prompts, MAX_NEW_TOKENS, 32, gen_kwargs=kwargs, desc=f"{model_dir} {decoding}")
        for i, t in zip(idx, texts):
            out[i] = t
    return out


@torch.no_grad()
def generate_plain(model, tok, texts: list[str], kwargs: dict) -> list[str]:
    """Continuations of plain-text prompts (no chat template), cut where a base model starts a new question."""
    tok.padding_side = "left"
    out = []
    for start in range(0, len(texts), 16):
        enc = tok(texts[start : start + 16], return_tensors="pt", padding=True)
        seqs = model.generate(
            **enc, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=tok.pad_token_id, **{"do_sample": False, **kwargs}
        )
        for seq in seqs[:, enc["input_ids"].shape[1] :]:
            out.append(_STOP.split(tok.decode(seq, skip_special_tokens=True))[0].strip())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/benchmark")
    ap.add_argument("--out", default="annotation/pool")
    ap.add_argument("--source", action="append", help="only these sources (default: all)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    slots = plan(a.data)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for source, model_dir in {**ARMS, **COMPLIANT}.items():
        if a.source and source not in a.source:
            continue
        mine = [s for s in slots if s["source"] == source]
        target = out / (source.replace("/", "__").replace("@", "_") + ".jsonl")
        if target.exists() and len(read_jsonl(target)) == len(mine):
            log.info("%s: done already", source)
            continue
        if not (Path(model_dir) / "safealign.json").exists():
            log.warning("%s: no model at %s yet, skipped", source, model_dir)
            continue
        log.info("%s: %d answers from %s", source, len(mine), model_dir)
        texts = answer(model_dir, mine, base_model=source.startswith("gemma3-270m/base"))
        write_jsonl(target, [s | {"response": t} for s, t in zip(mine, texts)])
    print(json.dumps({"slots": len(slots)}))


if __name__ == "__main__":
    main()
