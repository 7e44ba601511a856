"""Loaders for public multilingual safety benchmarks, from local files in their published formats.

Each returns prompts as benchmark rows (id, lang, kind="harmful", category, split="eval", prompt), so the
evaluate stage scores an arm on them with `evaluate.benchmark: <name>` and `evaluate.benchmark_path: <path>`.
Nothing is downloaded: put the files under data/public/ (tracked by data.dvc) and point the param at them.

  multijail   MultiJail (Deng et al. 2023): one CSV with a byte-order mark, columns id, source, tags, en, zh, it,
              vi, ar, ko, th, bn, sw, jv; tags is a Python-list literal of tag names that may contain commas
              ("['Violence & incitement', 'Weapons']"): category = slug of the first tag, column tags = all slugs
  xsafety     XSafety (Wang et al. 2023): a folder per language (en/, zh/, ...; Spanish is sp/, read as es) of
              <Category>[_n|_en].csv files (bn/: .xlsx), one prompt per row, no header, some with a byte-order
              mark, some rows empty; commonsense.csv (hi/ also commen_sense.csv) is a different task and skipped
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
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
from openpyxl.utils.exceptions import InvalidFileException

from safealign.data import DataError, read_jsonl

COLUMNS = ["id", "lang", "kind", "category", "split", "prompt"]
MULTIJAIL_LANGS = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")
AYA_LANGS = {
    "english": "en",
    "hindi": "hi",
    "french": "fr",
    "spanish": "es",
    "arabic": "ar",
    "russian": "ru",
    "serbian": "sr",
    "filipino": "tl",
    "tagalog": "tl",
}
XSAFETY_LANGS = {"sp": "es"}  # folder -> ISO 639-1 code where they differ; the other folders are already codes
XSAFETY_SKIP = {"commonsense", "commen_sense"}  # commonsense safety is a multiple-choice task; hi/ misspells a copy
XSAFETY_ALIASES = {"crimes_and_illegal_activitie": "crimes_and_illegal_activities"}  # ru/ truncates this file name
UNREADABLE = (OSError, ValueError, KeyError, csv.Error, zipfile.BadZipFile, InvalidFileException)


def _frame(rows: list[dict], source: str) -> pd.DataFrame:
    if not rows:
        raise DataError(source, None, None, "no prompts found in this benchmark file or folder")
    df = pd.DataFrame(rows)
    df["kind"], df["split"] = "harmful", "eval"
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


def _slug(text: str) -> str:
    # "Violence & incitement" -> violence_incitement; punctuation such as "(e.g. lying, ...)" must not leak into ids
    return re.sub(r"[^\w-]+", "_", text.strip().lower().replace(" & ", " ").replace(",", "")).strip("_")


def _multijail_tags(raw: str, path: str | Path, row: int) -> list[str]:
    """Slugs of a `tags` cell. It is a Python-list literal whose tag names may contain commas, so parse it."""
    try:
        tags = ast.literal_eval(raw.strip() or "[]")
    except (ValueError, SyntaxError) as e:
        raise DataError(str(path), row, "tags", "MultiJail tags must be a Python list literal", raw) from e
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DataError(str(path), row, "tags", "MultiJail tags must be a list of strings", raw)
    return [_slug(t) for t in tags]


def load_multijail(path: str | Path) -> pd.DataFrame:
    """MultiJail CSV: one row per item, one column per language (the parallel translations share the id)."""
    rows = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:  # the published file starts with a BOM
            reader = csv.DictReader(fh)
            records = list(reader)
    except UNREADABLE as e:
        raise DataError(str(path), None, None, "cannot read this MultiJail CSV", str(e)) from e
    missing = {"id", "tags", *MULTIJAIL_LANGS} - set(reader.fieldnames or [])
    if missing:  # a missing language column would drop that language silently
        raise DataError(
            str(path), 1, ",".join(sorted(missing)), "MultiJail CSV needs columns id, tags and every language"
        )
    for n, r in enumerate(records, start=2):
        tags = _multijail_tags(r["tags"], path, n)
        for lang in MULTIJAIL_LANGS:
            if r[lang].strip():
                rows.append(
                    {
                        "id": f"multijail-{r['id']}",
                        "lang": lang,
                        "category": tags[0] if tags else "unknown",
                        "tags": tags,
                        "prompt": r[lang].strip(),
                        "source": r.get("source", ""),
                        "_row": n,
                    }
                )
    return _frame(rows, str(path))


def _xsafety_category(f: Path) -> str:
    """Canonical scenario of a file: the stem without the per-language suffix (_n, _en), slugged, typos mapped."""
    stem = _slug(f.stem.removesuffix("_n").removesuffix("_en"))
    return XSAFETY_ALIASES.get(stem, stem)


def _xsafety_records(f: Path) -> list[list]:
    """Every row of one scenario file as cell values, empty rows included (row positions align the languages)."""
    if f.suffix == ".xlsx":
        sheet = openpyxl.load_workbook(f).worksheets[0]
        return [list(r) for r in sheet.iter_rows(min_row=1, values_only=True)]  # min_row=1 keeps leading blanks
    with open(f, encoding="utf-8-sig", newline="") as fh:  # most files start with a BOM
        return list(csv.reader(fh))


def _xsafety_prompts(f: Path) -> Iterator[tuple[int, str]]:
    """(row position, prompt) of the non-empty rows of one scenario file."""
    try:
        records = _xsafety_records(f)
    except UNREADABLE as e:
        raise DataError(str(f), None, None, "cannot read this XSafety file", str(e)) from e
    for n, rec in enumerate(records, start=1):
        cells = [str(c).strip() for c in rec if c is not None and str(c).strip()]
        if len(cells) > 1:  # an unquoted comma would split a prompt: refuse rather than keep half of it
            raise DataError(str(f), n, None, "XSafety rows hold one prompt", f"{len(cells)} non-empty cells")
        if cells:
            yield n, cells[0]


def load_xsafety(folder: str | Path) -> pd.DataFrame:
    """XSafety: <folder>/<lang>/<Category>[_n|_en].csv|.xlsx, one prompt per row. Items are parallel by row position
    within a scenario (the benchmark was translated row by row), so the id is scenario + position, empty rows
    counted: row 37 of Insult is the same item in every language whatever the file is called."""
    rows = []
    for lang_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")):
        lang, found = XSAFETY_LANGS.get(lang_dir.name, lang_dir.name), 0
        for f in sorted(p for p in lang_dir.iterdir() if not p.name.startswith(".")):
            if f.suffix not in (".csv", ".xlsx"):
                raise DataError(str(f), None, None, "XSafety files are .csv or .xlsx")
            category = _xsafety_category(f)
            if category in XSAFETY_SKIP:
                continue
            found += 1
            rows += [
                {"id": f"xsafety-{category}-{n}", "lang": lang, "category": category, "prompt": prompt}
                for n, prompt in _xsafety_prompts(f)
            ]
        if not found:
            raise DataError(str(lang_dir), None, None, "no XSafety scenario files in this language folder")
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
                pairs.append(
                    (r[f"response_{i}"], not r.get(f"is_response_{i}_safe", True), cats[0] if cats else "unlabeled")
                )
        item = "pku-" + hashlib.sha1(r["prompt"].encode()).hexdigest()[:12]
        for response, harmful, category in pairs:
            rows.append(
                {
                    "id": item,
                    "lang": lang,
                    "category": _slug(category),
                    "prompt": r["prompt"],
                    "response": response,
                    "harmful": int(harmful),
                    "first": item not in seen,
                }
            )
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
            rows.append(
                {
                    "id": "aya-" + hashlib.sha1(key.encode()).hexdigest()[:12],
                    "lang": lang,
                    "category": category,
                    "prompt": r["prompt"],
                    "scope": r.get("global_or_local"),
                }
            )
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
