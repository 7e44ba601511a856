"""Annotation batches and the merge into data/labeled_real (see data/labeled_real/README.md).

    python tools/annotation/batches.py make  --pool annotation/pool --old data/labeled_real --out annotation
    python tools/annotation/batches.py merge --out annotation --data data/labeled_real

`make` writes, per language, the first-pass batch (every sampled answer plus the 255 answers annotated in
November, in a seeded random order, without their source or earlier label) and a second-pass batch (a stratified
sample of the new answers, for an annotator who never sees the first labels). Run again after the pool grew, it
batches only the new answers (round r2, r3, ...). `merge` joins the passes: the final
label is the first pass's, or the adjudicated one where the second pass (or, for the November answers, the
November label) disagrees; it refuses to write while a disagreement is not adjudicated.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from safealign.data import judge_split, load_benchmark, read_jsonl
from safealign.io import write_jsonl

LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]
SECOND_PER_LANGUAGE, SECOND_LATER_ROUNDS, SEED = 26, 8, 7
HARMFUL = ("compliance", "partial")
SHOWN = ("uid", "kind", "category", "prompt", "prompt_en", "response")


def pool_rows(pool: Path, old: Path, bench: Path) -> dict[str, list[dict]]:
    df = load_benchmark(bench, LANGS)
    meta = {(r.id, r.lang): r for r in df.itertuples()}
    rows: dict[str, list[dict]] = {lang: [] for lang in LANGS}
    for f in sorted(pool.glob("*.jsonl")):
        for r in read_jsonl(f):
            rows[r["lang"]].append({k: v for k, v in r.items() if not k.startswith("_")} | {"origin": "sampled"})
    for lang in LANGS:
        for r in read_jsonl(old / f"{lang}.jsonl") if (old / f"{lang}.jsonl").exists() else []:
            m = meta[(r["id"], lang)]
            rows[lang].append(
                {
                    "uid": r["uid"],
                    "id": r["id"],
                    "lang": lang,
                    "kind": r["kind"],
                    "category": m.category,
                    "split": m.split,
                    "source": f"smollm2/{r['source_arm']}",
                    "decoding": "greedy",
                    "prompt": r["prompt"],
                    "response": r["response"],
                    "origin": "november",
                    "november_label": r["label"],
                    "november_rationale": r.get("note") or "",
                }
            )
    for lang in LANGS:
        for r in rows[lang]:
            r["prompt_en"] = meta[(r["id"], "en")].prompt
    return rows


def make(args) -> None:
    """Batches for every answer not yet in a batch (the pool can grow: a later round batches only the new rows)."""
    rows = pool_rows(args.pool, args.old, args.bench)
    out = args.out
    (out / "batches").mkdir(parents=True, exist_ok=True)
    (out / "second").mkdir(parents=True, exist_ok=True)
    batched = {r["uid"] for f in (out / "batches").glob("*.jsonl") for r in read_jsonl(f)}
    rounds = len({f.name.split(".")[1] for f in (out / "batches").glob("*.r*.jsonl")})
    tag = f"r{rounds + 1}"
    rng = random.Random(SEED + rounds)
    write_jsonl(out / "all_rows.jsonl", [r for lang in LANGS for r in rows[lang]])
    new_counts = {}
    for lang in LANGS:
        first = [r for r in rows[lang] if r["uid"] not in batched]
        new_counts[lang] = len(first)
        if not first:
            continue
        rng.shuffle(first)
        write_jsonl(out / "batches" / f"{lang}.{tag}.jsonl", [{k: r[k] for k in SHOWN} for r in first])
        sampled = [r for r in first if r["origin"] == "sampled"]
        compliant = [r for r in sampled if "compliant" in r["source"] or "gemma" in r["source"]]
        other = [r for r in sampled if r not in compliant]
        n = SECOND_PER_LANGUAGE if rounds == 0 else SECOND_LATER_ROUNDS
        second = rng.sample(compliant, min(n // 3 if other else n, len(compliant)))
        second += rng.sample(other, min(n - len(second), len(other)))
        rng.shuffle(second)
        write_jsonl(out / "second" / f"{lang}.{tag}.jsonl", [{k: r[k] for k in SHOWN} for r in second])
    print(tag, new_counts)


def merge(args) -> None:
    out = args.out
    rows = {r["uid"]: r for r in read_jsonl(out / "all_rows.jsonl")}
    first = {r["uid"]: r for f in sorted((out / "labels").glob("*.A.jsonl")) for r in read_jsonl(f)}
    second = {r["uid"]: r for f in sorted((out / "labels").glob("*.B.jsonl")) for r in read_jsonl(f)}
    adjudicated = {r["uid"]: r for f in sorted((out / "labels").glob("*.adjudication.jsonl")) for r in read_jsonl(f)}
    missing = sorted(set(rows) - set(first))
    if missing:
        raise SystemExit(f"{len(missing)} answers have no first-pass label, e.g. {missing[:3]}")
    final, open_disputes = {lang: [] for lang in LANGS}, []
    for uid, r in rows.items():
        a = first[uid]
        b_label, b_note, b_who = None, None, None
        if uid in second:
            b_label, b_note, b_who = (
                second[uid]["label"],
                second[uid]["rationale"],
                second[uid].get("annotator", "annotator-B"),
            )
        elif r["origin"] == "november":
            b_label, b_note, b_who = r["november_label"], r["november_rationale"], "november-2026 pass"
        label, adjudication = a["label"], None
        if b_label is not None and b_label != a["label"]:
            if uid not in adjudicated:
                open_disputes.append(
                    {
                        "uid": uid,
                        "lang": r["lang"],
                        "kind": r["kind"],
                        "prompt": r["prompt"],
                        "prompt_en": r["prompt_en"],
                        "response": r["response"],
                        "first": {"label": a["label"], "rationale": a["rationale"]},
                        "second": {"label": b_label, "rationale": b_note},
                    }
                )
                continue
            label = adjudicated[uid]["label"]
            adjudication = f"{adjudicated[uid]['label']}: {adjudicated[uid]['rationale']}"
        final[r["lang"]].append(
            {
                "uid": uid,
                "id": r["id"],
                "lang": r["lang"],
                "kind": r["kind"],
                "category": r["category"],
                "split": r["split"],
                "source": r["source"],
                "decoding": r.get("decoding"),
                "prompt": r["prompt"],
                "response": r["response"],
                "label": label,
                "harmful": int(r["kind"] == "harmful" and label in HARMFUL),
                "first_label": a["label"],
                "rationale": a["rationale"],
                "annotator": a.get("annotator", "annotator-A"),
                "second_label": b_label,
                "second_rationale": b_note,
                "second_annotator": b_who,
                "adjudication": adjudication,
                "judge_split": judge_split(r["id"], r["split"]),
            }
        )
    if open_disputes:
        write_jsonl(out / "disputes.jsonl", open_disputes)
        raise SystemExit(f"{len(open_disputes)} disagreements need an adjudication: {out / 'disputes.jsonl'}")
    args.data.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        write_jsonl(args.data / f"{lang}.jsonl", sorted(final[lang], key=lambda r: (r["split"], r["id"], r["uid"])))
    print(json.dumps({lang: len(v) for lang, v in final.items()}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "merge"])
    ap.add_argument("--pool", type=Path, default=Path("annotation/pool"))
    ap.add_argument("--old", type=Path, default=Path("data/labeled_real"))
    ap.add_argument("--bench", type=Path, default=Path("data/benchmark"))
    ap.add_argument("--out", type=Path, default=Path("annotation"))
    ap.add_argument("--data", type=Path, default=Path("data/labeled_real"))
    a = ap.parse_args()
    make(a) if a.what == "make" else merge(a)
