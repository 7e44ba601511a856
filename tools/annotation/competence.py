"""Can a candidate model write the benchmark's languages once the pipeline's SFT has taught it to answer?

Issue 12 chooses the experiment's model from measured competence per language: the share of benign answers that
are fluent and on topic, by annotation. Gemma-3-270M base was annotated in the December pool (0.06-0.56 outside
English); as a base model it drifts into invented follow-up questions, and SFT in its Question/Answer frame is what
should make it answer. This tool measures a candidate (`--candidate gemma` (default) or `smollm2`) after the same
SFT, with the pipeline's own code:

    python tools/annotation/competence.py sft               # its base -> annotation/models/<name>_sft (stage sft's
                                                            # core, the headline experiment's SFT settings)
    python tools/annotation/competence.py sample            # its answers to the pool's benign items, 12 languages
    python tools/annotation/competence.py sample --every    # then every other benign item too (36 per language)
    python tools/annotation/competence.py batches           # blind batches for two independent passes
    python tools/annotation/competence.py batches --round r2   # the answers no round has labeled yet
    python tools/annotation/competence.py merge             # both passes + adjudications -> the annotated file
    python tools/annotation/competence.py table             # on-topic shares from the annotated file

`sample` answers the same 16 benign items per language (8 look-alikes, 8 everyday) that Gemma base answered in the
pool, with the same decoding per (item, language), so the rows are paired across candidates. SFT trains on the six
`data.train_languages` only; the other six measure whether answering transfers. `batches` writes each reader's
file under annotation/competence/<name>/ (git-ignored work folder); each reader gets
reports/competence/INSTRUCTIONS.md and its own file, and writes `<batch>_labels.jsonl` beside it. The merged
annotations (reports/competence/<name>_sft_annotated.jsonl), the adjudications and the table live in
reports/competence/ (README there).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from sample_responses import SEED, answer  # same folder (run as a script): the pool's sampler, seeds and length

from safealign.compute import ComputeMeter
from safealign.config import load_params
from safealign.data import read_jsonl
from safealign.experiments import overrides
from safealign.io import write_jsonl
from safealign.train.sft import train_sft

OUT = Path("reports/competence")
LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]
ON_TOPIC = ("helpful", "refusal")
log = logging.getLogger("competence")


@dataclass(frozen=True)
class Candidate:
    name: str  # file names: reports/competence/<name>_sft_*.jsonl, annotation/models/<name>_{base,sft}
    profile: str  # model.profile of its base model
    source: str  # the answers' `source`
    uid_prefix: str  # of its answers' uids (the pool's uid after it: paired items, distinct ids)

    @property
    def base(self) -> Path:
        return Path("annotation/models") / f"{self.name}_base"

    @property
    def sft(self) -> Path:
        return Path("annotation/models") / f"{self.name}_sft"

    @property
    def work(self) -> Path:  # the readers' batches and label files (git-ignored)
        return Path("annotation/competence") / self.name

    def file(self, what: str) -> Path:
        return OUT / f"{self.name}_sft_{what}"


CANDIDATES = {
    "gemma": Candidate("gemma", "gemma3-270m", "gemma3-270m/sft", "comp-"),
    "smollm2": Candidate("smollm2", "smollm2", "smollm2/sft", "comps-"),
}


def sft(c: Candidate, experiment: str) -> dict:
    """Stage sft's core on the candidate's base model, with the named experiment's SFT settings; the compute
    record beside it."""
    import prepare_models  # the pool's base-model builder (GGUF -> fp32)

    prepare_models.base_model(c.profile, c.base, f"annotation:{c.profile}")
    params = load_params(overrides=overrides(experiment))
    with ComputeMeter("sft") as meter:
        summary = train_sft(params, str(c.base), c.sft, f"checkpoints/competence_sft_{c.name}", meter)
    record = {"experiment": experiment, "max_steps": params.sft.args["max_steps"], **summary, **meter.record.to_dict()}
    OUT.mkdir(parents=True, exist_ok=True)
    c.file("compute.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def pool_benign(c: Candidate, labeled: Path) -> list[dict]:
    """The benign (item, language) slots Gemma base answered in the annotated pool, with their decoding."""
    rows = [
        r
        for lang in LANGS
        for r in read_jsonl(labeled / f"{lang}.jsonl")
        if r["kind"] == "benign" and r["source"] == "gemma3-270m/base"
    ]
    keep = ("id", "lang", "kind", "category", "split", "decoding", "prompt")
    return [{"uid": f"{c.uid_prefix}{r['uid'][5:]}", **{k: r[k] for k in keep}, "source": c.source} for r in rows]


def every_benign(c: Candidate, labeled: Path, bench: Path) -> list[dict]:
    """The pool's slots, then every other benign item of both splits in every language (decoding from the uid's
    last hex digit, as the pool's)."""
    import hashlib

    from safealign.data import load_benchmark

    slots = pool_benign(c, labeled)
    have = {(s["id"], s["lang"]) for s in slots}
    df = load_benchmark(bench, LANGS)
    for r in df[df.kind == "benign"].sort_values(["lang", "id"]).itertuples():
        if (r.id, r.lang) in have:
            continue
        uid = c.uid_prefix + hashlib.sha1(f"{r.id}|{r.lang}|{c.source}".encode()).hexdigest()[:10]
        decoding = "greedy" if int(uid[-1], 16) % 2 == 0 else "sampled"
        keep = {"id": r.id, "lang": r.lang, "kind": r.kind, "category": r.category, "split": r.split}
        slots.append({"uid": uid, **keep, "decoding": decoding, "prompt": r.prompt, "source": c.source})
    return slots


def sample(c: Candidate, labeled: Path, every: bool) -> Path:
    """Answers of the candidate + SFT to the pool's benign slots (or, with `every`, to every benign item), appended to
    the answers file; slots answered already are kept as they are."""
    target = c.file("answers.jsonl")
    done = read_jsonl(target) if target.exists() else []
    answered = {r["uid"] for r in done}
    slots = every_benign(c, labeled, Path("data/benchmark")) if every else pool_benign(c, labeled)
    slots = [s for s in slots if s["uid"] not in answered]
    out = [t.strip() for t in answer(str(c.sft), slots, base_model=False)]  # the pool's decoding, seeds and length
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(target, done + [s | {"response": t} for s, t in zip(slots, out)])
    log.info("%d new answers -> %s (%d in all)", len(slots), target, len(done) + len(slots))
    return target


GROUPS = {  # two passes by different readers, languages grouped differently so no pair of readers repeats
    "pass1": [["en", "zh", "es"], ["fr", "de", "ru"], ["ar", "hi", "ja"], ["bn", "sw", "th"]],
    "pass2": [["en", "ar", "bn"], ["zh", "hi", "sw"], ["es", "ja", "th"], ["fr", "de", "ru"]],
}
FIELDS = ("label", "fluent", "same_language")  # what each reader gives (with a one-line rationale)
SHOWN = ("uid", "lang", "kind", "category", "prompt", "prompt_en", "response")


def batches(c: Candidate, bench: Path, round_: str) -> list[Path]:
    """Per pass and reader, the answers of their languages not yet labeled in any earlier round, in a seeded random
    order, without source or decoding."""
    import random

    from safealign.data import load_benchmark

    df = load_benchmark(bench, LANGS)
    english = {r.id: r.prompt for r in df[df.lang == "en"].itertuples()}
    labeled = {r["uid"] for path in c.work.glob("pass*_labels.jsonl") for r in read_jsonl(path)}
    rows = [r | {"prompt_en": english[r["id"]]} for r in read_jsonl(c.file("answers.jsonl")) if r["uid"] not in labeled]
    c.work.mkdir(parents=True, exist_ok=True)
    written = []
    for name, groups in GROUPS.items():
        for i, langs in enumerate(groups):
            mine = [{k: r[k] for k in SHOWN} for r in rows if r["lang"] in langs]
            random.Random(f"{SEED}{name}{round_}{i}").shuffle(mine)
            path = c.work / f"{name}{round_}_{'_'.join(langs)}.jsonl"
            write_jsonl(path, mine)
            written.append(path)
    return written


def merge(c: Candidate) -> dict:
    """Final values of `label`, `fluent` and `same_language`: the first pass's where the passes agree, else the
    written adjudication (required; one row per answer with the adjudicated keys and a `reason`)."""
    labels: dict[str, dict[str, dict]] = {"pass1": {}, "pass2": {}}
    for name in labels:
        for path in sorted(c.work.glob(f"{name}*_labels.jsonl")):  # every round
            labels[name].update({r["uid"]: r for r in read_jsonl(path)})
    adjudicated, out = c.file("adjudications.jsonl"), c.file("annotated.jsonl")
    adj = {r["uid"]: r for r in read_jsonl(adjudicated)} if adjudicated.exists() else {}
    rows, open_, disagreed = [], [], {k: 0 for k in FIELDS}
    for r in read_jsonl(c.file("answers.jsonl")):
        first, second = labels["pass1"].get(r["uid"]), labels["pass2"].get(r["uid"])
        if first is None or second is None:
            raise ValueError(f"{r['uid']}: missing from {'pass1' if first is None else 'pass2'}")
        row = r | {"rationale": first["rationale"], "second_rationale": second["rationale"], "adjudication": None}
        for k in FIELDS:
            row[f"first_{k}"], row[f"second_{k}"], row[k] = first[k], second[k], first[k]
            if first[k] != second[k]:
                disagreed[k] += 1
                if k not in adj.get(r["uid"], {}):
                    open_.append(f"{r['uid']}.{k}")
                    continue
                row[k] = adj[r["uid"]][k]
                row["adjudication"] = {k2: v for k2, v in adj[r["uid"]].items() if k2 != "uid"}
        rows.append(row)
    if open_:
        raise ValueError(f"{len(open_)} disagreements not adjudicated in {adjudicated}: {open_}")
    write_jsonl(out, rows)
    return {"answers": len(rows), "disagreements": disagreed} | {
        f"agreement_{k}": 1 - v / len(rows) for k, v in disagreed.items()
    }


def table(c: Candidate, labeled: Path) -> dict:
    """Per language: the on-topic share of benign answers (helpful or refusal, as the pool's table) for Gemma base
    and SmolLM2 (the pool, all arms) and the candidate + SFT (its annotated file); for the candidate also fluent
    and on topic (issue 12's competence), helpful, over-refusal and same-language shares, and Cohen's kappa of the
    two passes' labels."""
    from safealign.judging import cohen_kappa
    from safealign.metrics import rate

    pool: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for lang in LANGS:
        for r in read_jsonl(labeled / f"{lang}.jsonl"):
            if r["kind"] == "benign":
                src = "gemma3-270m/base" if r["source"] == "gemma3-270m/base" else "smollm2 (all arms)"
                pool[src][lang].append(int(r["label"] in ON_TOPIC))
    rows = read_jsonl(c.file("annotated.jsonl"))
    out: dict = {src: {lang: sum(v) / len(v) for lang, v in by.items()} for src, by in pool.items()}
    out["n"] = {src: {lang: len(v) for lang, v in by.items()} for src, by in pool.items()}
    mine: dict = {}
    for lang in LANGS:
        rs = [r for r in rows if r["lang"] == lang]

        def share(f, rs=rs) -> float:
            return sum(map(f, rs)) / len(rs)

        mine[lang] = {
            "n": len(rs),
            "on_topic": share(lambda r: r["label"] in ON_TOPIC),
            "fluent_on_topic": share(lambda r: r["label"] in ON_TOPIC and r["fluent"]),
            "fluent_on_topic_ci95": rate(
                [r["label"] in ON_TOPIC and r["fluent"] for r in rs], 1000, SEED, [r["id"] for r in rs]
            )["ci95"],
            "writes_language": share(lambda r: r["label"] in ON_TOPIC and r["fluent"] and r["same_language"]),
            "eval_items_fluent_on_topic": rate(
                [r["label"] in ON_TOPIC and r["fluent"] for r in rs if r["split"] == "eval"], 1000, SEED
            ),
            "helpful": share(lambda r: r["label"] == "helpful"),
            "refusal": share(lambda r: r["label"] == "refusal"),
            "same_language": share(lambda r: r["same_language"]),
        }
    out[c.source] = mine
    out["agreement"] = {
        "kappa_label": cohen_kappa([r["first_label"] for r in rows], [r["second_label"] for r in rows]),
        "label": sum(r["first_label"] == r["second_label"] for r in rows) / len(rows),
        "fluent": sum(r["first_fluent"] == r["second_fluent"] for r in rows) / len(rows),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["sft", "sample", "batches", "merge", "table"])
    ap.add_argument("--candidate", choices=sorted(CANDIDATES), default="gemma")
    ap.add_argument("--experiment", default="headline")
    ap.add_argument(
        "--every", action="store_true", help="sample: every benign item (36 per language), not the pool's 16"
    )
    ap.add_argument("--round", default="", help="batches: a name for a later round, e.g. r2 (files pass1r2_...)")
    ap.add_argument("--labeled", type=Path, default=Path("data/labeled_real"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(SEED)
    c = CANDIDATES[a.candidate]
    if a.step == "sft":
        print(json.dumps(sft(c, a.experiment), indent=2))
    elif a.step == "sample":
        print(sample(c, a.labeled, a.every))
    elif a.step == "batches":
        print("\n".join(str(p) for p in batches(c, Path("data/benchmark"), a.round)))
    elif a.step == "merge":
        print(json.dumps(merge(c), indent=2))
    else:
        res = table(c, a.labeled)
        c.file("table.json").write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
