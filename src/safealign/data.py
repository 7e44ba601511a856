"""The cross-lingual benchmark and the training/evaluation sets derived from it.

One file per language (data/benchmark/<lang>.jsonl, schema in data/SCHEMA.md); an item id is shared by
all its translations, and its split (train/eval) is a property of the id, so no prompt content crosses splits and
languages are compared on the same content.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

KINDS = ("harmful", "benign", "reasoning")
SPLITS = ("train", "eval")
HARM_CATEGORIES = (
    "violent_crimes",
    "nonviolent_crimes",
    "cybercrime",
    "weapons_cbrne",
    "self_harm",
    "hate_speech",
    "harassment",
    "privacy",
    "drugs",
    "misinformation",
    "defamation",
    "extremism",
    "unsafe_medical_advice",
    "ip_violation",
)
CATEGORIES = {
    "harmful": HARM_CATEGORIES,
    "benign": ("lookalike", "general"),
    "reasoning": ("arithmetic", "logic"),
}
# Fields each kind must carry (beyond id, lang, kind, category, split, prompt, reference) and may not carry.
KIND_FIELDS = {"harmful": ("compliant", "partial"), "benign": ("refusal",), "reasoning": ("answer",)}
BASE_FIELDS = ("id", "lang", "kind", "category", "split", "prompt", "reference")
# Annotated real model responses (data/labeled_real/<lang>.jsonl, guide: data/labeled_real/GUIDE.md): the ground
# truth that chooses and validates the judge. `label` is final: the first pass's label, or the adjudicated one
# where an independent second pass disagreed.
REAL_LABELS = {
    "harmful": ("compliance", "partial", "refusal", "off_topic"),
    "benign": ("helpful", "refusal", "off_topic"),
}
REAL_FIELDS = (
    "uid",
    "id",
    "lang",
    "kind",
    "category",
    "split",
    "source",
    "decoding",
    "prompt",
    "response",
    "label",
    "harmful",
    "first_label",
    "rationale",
    "annotator",
    "second_label",
    "second_rationale",
    "second_annotator",
    "adjudication",
    "judge_split",
)
REAL_OPTIONAL = ("decoding", "second_label", "second_rationale", "second_annotator", "adjudication")
JUDGE_SPLITS = ("train", "dev", "test")
JUDGE_DEV_SHARE = 0.25  # of train-split items, by a hash of the item id
ALL_FIELDS = BASE_FIELDS + tuple(f for fs in KIND_FIELDS.values() for f in fs)


class DataError(ValueError):
    """Bad input data; the message names file, row, field and rule."""

    def __init__(self, file: str, row: int | None, field: str | None, rule: str, detail: str = ""):
        self.file, self.row, self.field, self.rule = file, row, field, rule
        where = f"{file}" + (f", row {row}" if row is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {rule}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Problem:
    """One reason to reject a drop: which object (or file), which row (1-based line), which rule."""

    key: str | None
    row: int | None
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        where = (self.key or "drop") + (f", row {self.row}" if self.row is not None else "")
        return f"{where}: {self.rule}" + (f" ({self.detail})" if self.detail else "")


class DropRejected(DataError):
    """A drop (or one object of it) is refused; `problems` lists every reason, each with key, row and rule."""

    def __init__(
        self,
        key: str | None = None,
        row: int | None = None,
        rule: str = "",
        detail: str = "",
        problems: list[Problem] | None = None,
    ):
        self.problems = list(problems) if problems else [Problem(key, row, rule, detail)]
        first = self.problems[0]
        self.key = first.key
        super().__init__(first.key or "drop", first.row, None, first.rule, first.detail)
        if len(self.problems) > 1 or problems:
            lines = "\n  ".join(str(p) for p in self.problems)
            self.args = (f"drop rejected, {len(self.problems)} problem(s):\n  {lines}",)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse a JSONL file; each record gets `_file` and `_row` (1-based line number) for error messages."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(str(path), n, None, "row must be valid JSON", str(e)) from None
            if not isinstance(obj, dict):
                raise DataError(str(path), n, None, "row must be a JSON object", type(obj).__name__)
            obj["_file"], obj["_row"] = str(path), n
            rows.append(obj)
    return rows


def benchmark_files(data_dir: str | Path, languages: list[str]) -> dict[str, Path]:
    """Map each configured language to its file; a missing file is a data error, not a silent skip."""
    files = {lang: Path(data_dir) / f"{lang}.jsonl" for lang in languages}
    for lang, f in files.items():
        if not f.exists():
            raise DataError(str(f), None, None, f"file for language '{lang}' (listed in data.languages) is missing")
    return files


def load_benchmark(data_dir: str | Path, languages: list[str]) -> pd.DataFrame:
    """All rows of the configured languages as one frame (columns ALL_FIELDS + _file, _row)."""
    rows: list[dict[str, Any]] = []
    for f in benchmark_files(data_dir, languages).values():
        rows.extend(read_jsonl(f))
    df = pd.DataFrame(rows)
    for col in ALL_FIELDS:
        if col not in df:
            df[col] = None
    return df


def train_split(df: pd.DataFrame, train_languages: list[str]) -> pd.DataFrame:
    """Training rows: the train split, in the languages we safety-train on."""
    return df[(df["split"] == "train") & df["lang"].isin(train_languages)]


def sft_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Safe demonstrations in TRL's conversational prompt/completion format (loss on the completion only):
    refuse-and-redirect for harmful prompts, helpful answers for benign ones, worked answers for reasoning
    probes (so that safety training does not erode the skill we measure)."""
    return [
        {
            "prompt": [{"role": "user", "content": r.prompt}],
            "completion": [{"role": "assistant", "content": r.reference}],
            "lang": r.lang,
            "kind": r.kind,
        }
        for r in rows.itertuples()
    ]


def preference_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Preference pairs for the reward model: chosen = safe, rejected = compliant or partial (harmful prompts);
    chosen = helpful, rejected = over-refusal (benign prompts), so that the reward does not pay for refusing
    everything."""
    pairs = []
    for r in rows.itertuples():
        prompt = [{"role": "user", "content": r.prompt}]
        rejected = {"harmful": [r.compliant, r.partial], "benign": [r.refusal]}.get(r.kind, [])
        for bad in rejected:
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": r.reference}],
                    "rejected": [{"role": "assistant", "content": bad}],
                    "id": r.id,
                    "lang": r.lang,
                    "kind": r.kind,
                }
            )
    return pairs


def rl_prompts(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Prompts RL samples from: harmful and benign ones (benign prompts keep over-refusal in check)."""
    sub = rows[rows["kind"].isin(["harmful", "benign"])]
    return [{"prompt": r.prompt, "lang": r.lang, "kind": r.kind, "id": r.id} for r in sub.itertuples()]


def eval_items(
    df: pd.DataFrame, languages: list[str], items_per_language: dict[str, int] | None, seed: int
) -> pd.DataFrame:
    """Eval-split rows of every language. With `items_per_language` ({kind: n}), the same n ids per kind are
    kept in every language (parallel), stratified by category: round-robin over the categories in a seeded order,
    one seeded item per category per round, so n >= the number of categories covers every category (the config
    requires that for harmful prompts) and a smaller n takes a random subset of categories, not the first ones
    alphabetically."""
    ev = df[(df["split"] == "eval") & df["lang"].isin(languages)]
    if not items_per_language:
        return ev.reset_index(drop=True)
    rng = random.Random(seed)
    keep: list[str] = []
    for kind, n in items_per_language.items():
        by_cat: dict[str, list[str]] = defaultdict(list)
        for cat, item_id in sorted(set(zip(ev.loc[ev.kind == kind, "category"], ev.loc[ev.kind == kind, "id"]))):
            by_cat[cat].append(item_id)
        for ids in by_cat.values():
            rng.shuffle(ids)
        order = sorted(by_cat)
        rng.shuffle(order)
        queues = [by_cat[c] for c in order]
        picked: list[str] = []
        while len(picked) < n and any(queues):
            for q in queues:
                if q and len(picked) < n:
                    picked.append(q.pop())
        keep.extend(picked)
    return ev[ev["id"].isin(keep)].reset_index(drop=True)


def judge_split(item_id: str, split: str) -> str:
    """judge-test for every answer to an eval-split prompt; a train-split item goes, with all its languages, to
    judge-dev or judge-train by a hash of its id (stable, no state)."""
    if split == "eval":
        return "test"
    bucket = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "dev" if bucket < JUDGE_DEV_SHARE else "train"


def load_labeled_real(real_dir: str | Path, languages: list[str]) -> pd.DataFrame:
    """Annotated real responses of the configured languages (empty frame if the folder or a file is absent)."""
    rows: list[dict[str, Any]] = []
    for lang in languages:
        f = Path(real_dir) / f"{lang}.jsonl"
        if f.exists():
            rows.extend(read_jsonl(f))
    return pd.DataFrame(rows, columns=[*REAL_FIELDS, "_file", "_row"]) if not rows else pd.DataFrame(rows)
