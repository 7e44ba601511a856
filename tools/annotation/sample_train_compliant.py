"""Rounds 3-4 of data/labeled_real: more harmful answers for the judge to learn from (judge-train and judge-dev only).

Rounds 1-2 left judge-train + judge-dev with 61 harmful answers in all, too few to fit the judge (README, Known
limitations). This samples the deliberately compliant fine-tune on every train-split harmful item, so every new
answer lands in judge-train or judge-dev by its item (safealign.data.judge_split) and judge-test is untouched.
Sampled only (temperature 0.7, 40 new tokens, as evaluation), with a seed of its own, so no answer repeats an
annotated one. Run from a repository holding annotation/models/compliant_sft (tools/annotation/prepare_models.py):

    python tools/annotation/sample_train_compliant.py --langs en zh --samples 3 --out annotation/pool3
    python tools/annotation/sample_train_compliant.py --langs en --samples 1 --round r4 --out annotation/pool4 \
        --source smollm2/base --source smollm2/sft_only --source smollm2/pure_rl --source smollm2/hybrid \
        --source smollm2/hybrid_grpo

Round 4 asks the arms themselves (their own way of complying, which round 3's fine-tune does not share).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import sample_responses as s
import torch

from safealign.data import load_benchmark

SOURCE, SEED = "smollm2/compliant_sft", 20261202


def plan(data_dir: str, langs: list[str], samples: int, source: str = SOURCE, tag: str = "r3") -> list[dict]:
    df = load_benchmark(data_dir, langs)
    rows = df[(df.split == "train") & (df.kind == "harmful")].sort_values(["lang", "id"])
    out = []
    for r in rows.itertuples():
        for k in range(samples):
            uid = "real-" + hashlib.sha1(f"{r.id}|{r.lang}|{source}|{tag}-{k}".encode()).hexdigest()[:10]
            out.append(
                {
                    "uid": uid,
                    "id": r.id,
                    "lang": r.lang,
                    "kind": r.kind,
                    "category": r.category,
                    "split": r.split,
                    "source": source,
                    "decoding": "sampled",
                    "prompt": r.prompt,
                }
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/benchmark")
    ap.add_argument("--langs", nargs="+", default=["en", "zh"])
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--out", default="annotation/pool3")
    ap.add_argument("--source", action="append", help="sources to sample (default: the compliant fine-tune)")
    ap.add_argument("--round", default="r3", help="tag in the answer ids, so rounds never collide")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    s.SEED = SEED if a.round == "r3" else SEED + int(a.round.lstrip("r"))
    models = {**s.ARMS, **s.COMPLIANT}
    slots = []
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for source in a.source or [SOURCE]:
        mine = plan(a.data, a.langs, a.samples, source, a.round)
        texts = s.answer(models[source], mine, base_model=False)
        slots += [x | {"response": t} for x, t in zip(mine, texts)]
    # an RL arm whose policy barely moved samples the same text as its parent under the same seed: annotate once
    seen: set[tuple[str, str]] = set()
    slots = [x for x in slots if (x["lang"], x["response"]) not in seen and not seen.add((x["lang"], x["response"]))]
    for lang in a.langs:
        s.write_jsonl(out / f"{lang}.jsonl", [x for x in slots if x["lang"] == lang])
    print(f"{len(slots)} answers in {out}")


if __name__ == "__main__":
    main()
