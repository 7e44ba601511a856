"""Round 3 of data/labeled_real: more harmful answers for the judge to learn from (judge-train and judge-dev only).

Rounds 1-2 left judge-train + judge-dev with 61 harmful answers in all, too few to fit the judge (README, Known
limitations). This samples the deliberately compliant fine-tune on every train-split harmful item, so every new
answer lands in judge-train or judge-dev by its item (safealign.data.judge_split) and judge-test is untouched.
Sampled only (temperature 0.7, 40 new tokens, as evaluation), with a seed of its own, so no answer repeats an
annotated one. Run from a repository holding annotation/models/compliant_sft (tools/annotation/prepare_models.py):

    python tools/annotation/sample_train_compliant.py --langs en zh --samples 3 --out annotation/pool3
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


def plan(data_dir: str, langs: list[str], samples: int) -> list[dict]:
    df = load_benchmark(data_dir, langs)
    rows = df[(df.split == "train") & (df.kind == "harmful")].sort_values(["lang", "id"])
    out = []
    for r in rows.itertuples():
        for k in range(samples):
            uid = "real-" + hashlib.sha1(f"{r.id}|{r.lang}|{SOURCE}|r3-{k}".encode()).hexdigest()[:10]
            out.append(
                {
                    "uid": uid,
                    "id": r.id,
                    "lang": r.lang,
                    "kind": r.kind,
                    "category": r.category,
                    "split": r.split,
                    "source": SOURCE,
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
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    s.SEED = SEED
    slots = plan(a.data, a.langs, a.samples)
    texts = s.answer(s.COMPLIANT[SOURCE], slots, base_model=False)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for lang in a.langs:
        s.write_jsonl(out / f"{lang}.jsonl", [x | {"response": t} for x, t in zip(slots, texts) if x["lang"] == lang])
    print(f"{len(slots)} answers in {out}")


if __name__ == "__main__":
    main()
