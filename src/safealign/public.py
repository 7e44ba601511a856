"""Loaders for public multilingual safety benchmarks, from local files in their published formats.

Each returns prompts as benchmark rows (id, lang, kind="harmful", category, split="eval", prompt), so the
evaluate stage scores an arm on them with `evaluate.benchmark: <name>` and `evaluate.benchmark_path: <path>`.
Nothing is downloaded: put the files under data/public/ (tracked by data.dvc) and point the param at them.

  multijail   MultiJail (Deng et al. 2023): one CSV, columns id, source, tags, en, zh, it, vi, ar, ko, th, bn, sw, jv
  xsafety     XSafety (Wang et al. 2023): a folder per language (en/, zh/, ...) of <Category>[_n|_en].csv files,
              one prompt per line, no header
  beavertails BeaverTails / PKU-SafeRLHF (Ji et al. 2023): JSONL; BeaverTails rows have prompt, response,
              category {name: bool}, is_safe; PKU-SafeRLHF rows have prompt, response_0/1, is_response_0/1_safe
  aya         Aya Red-teaming (Aakanksha et al. 2024): JSONL per language, fields prompt, language,
              harm_category (a JSON/Python list as a string), global_or_local, ...
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
from pathlib import Path

import pandas as pd

from safealign.data import DataError, read_jsonl

COLUMNS = ["id", "lang", "kind", "category", "split", "prompt"]
MULTIJAIL_LANGS = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")
AYA_LANGS = {"english": "en", "hindi": "hi", "french": "fr", "spanish": "es", "arabic": "ar", "russian": "ru",
             "serbian": "sr", "filipino": "tl", "tagalog": "tl"}  # fmt: skip


def _frame(rows: list[dict], source: str) -> pd.DataFrame:
    if not rows:
        raise DataError(source, None, None, "no prompts found in this benchmark file or folder")
    df = pd.DataFrame(rows)
    df["kind"], df["split"] = "harmful", "eval"
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


def _slug(text: str) -> str:
    return text.strip().lower().replace(" & ", "_").replace(" ", "_").replace(",", "")


def load_multijail(path: str | Path) -> pd.DataFrame:
    """MultiJail CSV: one row per item, one column per language (the parallel translations share the id)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "en"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(str(path), 1, ",".join(sorted(missing)), "MultiJail CSV needs columns id and en")
        for n, r in enumerate(reader, start=2):
            category = _slug((r.get("tags") or "unknown").split(",")[0]) or "unknown"
            for lang in MULTIJAIL_LANGS:
                if r.get(lang, "").strip():
                    rows.append({"id": f"multijail-{r['id']}", "lang": lang, "category": category,
                                 "prompt": r[lang].strip(), "source": r.get("source", ""), "_row": n})  # fmt: skip
    return _frame(rows, str(path))


def load_xsafety(folder: str | Path) -> pd.DataFrame:
    """XSafety: <folder>/<lang>/<Category>[_n|_en].csv, one prompt per line. Items are parallel by line number
    within a category (the benchmark was translated line by line)."""
    rows = []
    for lang_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for f in sorted(lang_dir.glob("*.csv")):
            category = _slug(f.stem.removesuffix("_n").removesuffix("_en"))
            if category == "commonsense":  # XSafety's commonsense-safety set is a different task (choices)
                continue
            with open(f, encoding="utf-8", newline="") as fh:
                for n, rec in enumerate(csv.reader(fh), start=1):
                    if rec and rec[0].strip():
                        rows.append({"id": f"xsafety-{category}-{n}", "lang": lang_dir.name, "category": category,
                                     "prompt": rec[0].strip()})  # fmt: skip
    return _frame(rows, str(folder))


def load_beavertails(path: str | Path, lang: str = "en") -> pd.DataFrame:
    """BeaverTails or PKU-SafeRLHF JSONL (English). Keeps each distinct prompt once; also returns, per prompt, the
    responses with their human safety labels (columns response, harmful) for the detection benchmark."""
    rows, seen = [], set()
    for r in read_jsonl(Path(path)):
        if "prompt" not in r:
            raise DataError(str(path), r["_row"], "prompt", "BeaverTails/PKU-SafeRLHF rows need a prompt")
        pairs = []
        if "response" in r:  # BeaverTails
            cats = [k for k, v in (r.get("category") or {}).items() if v]
            pairs.append((r["response"], not r.get("is_safe", True), cats[0] if cats else "unlabeled"))
        for i in (0, 1):  # PKU-SafeRLHF
            if f"response_{i}" in r:
                cat = r.get(f"response_{i}_harm_category") or {}
                cats = [k for k, v in cat.items() if v] if isinstance(cat, dict) else []
                pairs.append((r[f"response_{i}"], not r.get(f"is_response_{i}_safe", True), cats[0] if cats else "unlabeled"))
        item = "pku-" + hashlib.sha1(r["prompt"].encode()).hexdigest()[:12]
        for response, harmful, category in pairs:
            rows.append({"id": item, "lang": lang, "category": _slug(category), "prompt": r["prompt"],
                         "response": response, "harmful": int(harmful), "first": item not in seen})  # fmt: skip
            seen.add(item)
    return _frame(rows, str(path))


def load_aya(path: str | Path) -> pd.DataFrame:
    """Aya Red-teaming JSONL (one file, or a folder of per-language files)."""
    files = sorted(Path(path).glob("*.jsonl")) if Path(path).is_dir() else [Path(path)]
    rows = []
    for f in files:
        for r in read_jsonl(f):
            lang = AYA_LANGS.get(str(r.get("language", "")).strip().lower())
            if lang is None:
                raise DataError(str(f), r["_row"], "language", f"unknown Aya language {r.get('language')!r}")
            raw = r.get("harm_category") or "[]"
            try:
                cats = json.loads(raw) if raw.strip().startswith("[") and '"' in raw else ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                cats = [raw]
            category = _slug(cats[0]) if cats else "unlabeled"
            key = r.get("semantic_translation") or r.get("literal_translation") or r["prompt"]
            rows.append({"id": "aya-" + hashlib.sha1(key.encode()).hexdigest()[:12], "lang": lang,
                         "category": category, "prompt": r["prompt"], "scope": r.get("global_or_local")})  # fmt: skip
    return _frame(rows, str(path))


LOADERS = {"multijail": load_multijail, "xsafety": load_xsafety, "beavertails": load_beavertails, "aya": load_aya}


def load_public(name: str, path: str | Path, languages: list[str]) -> pd.DataFrame:
    """Prompts of a public benchmark in the configured languages, one row per (item, language)."""
    if name not in LOADERS:
        raise DataError(str(path), None, None, f"unknown public benchmark '{name}' (have {sorted(LOADERS)})")
    if not Path(path).exists():
        raise DataError(str(path), None, None, f"{name} files not found: put them under data/public/ (no download)")
    df = LOADERS[name](path)
    if "first" in df:
        df = df[df["first"]]
    df = df[df["lang"].isin(languages)].drop_duplicates(["id", "lang"]).reset_index(drop=True)
    if df.empty:
        raise DataError(str(path), None, "lang", f"{name} has no prompts in data.languages {languages}")
    return df
