"""Vet a red-team drop before it touches data/: parse, check, merge into a staging copy, validate, then swap in.

A drop is one or more JSONL files (downloaded S3 objects) of benchmark rows (data/SCHEMA.md). `stage_drop` checks
every row (size, JSON, schema, language, new and unique ids, a row in every configured language), appends the
sound items to a temporary copy of the benchmark and runs the project's Great Expectations suite on that copy.
Every problem is collected and raised at once as DropRejected, each naming object key, row and rule.
`apply_staged` then replaces the benchmark files: all of them, or, on any failure, none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safealign.data import (
    ALL_FIELDS,
    BASE_FIELDS,
    KIND_FIELDS,
    KINDS,
    DataError,
    DropRejected,
    Problem,
    benchmark_files,
    read_jsonl,
)

log = logging.getLogger(__name__)

DEFAULT_LIMITS: dict[str, int] = {
    "min_chars": 2,
    "max_prompt_chars": 300,
    "max_response_chars": 400,  # as data.* in params.yaml
    "max_row_bytes": 8 * 1024,  # a benchmark row is < 2 KiB; anything near this is junk or an attack
    "max_rows": 10_000,  # per drop
}
BENCHMARK_LIMITS = ("min_chars", "max_prompt_chars", "max_response_chars")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Fields whose value is a property of the item, so every translation must agree on it.
SHARED_FIELDS = ("kind", "category", "split", "answer")

# Rule texts (tests and operators match on these).
RULE_HUGE = "row too large"
RULE_UTF8 = "row must be UTF-8"
RULE_JSON = "row must be valid JSON"
RULE_OBJECT = "row must be a JSON object"
RULE_DUP_FIELD = "field appears twice in the row"
RULE_UNKNOWN_FIELD = "unknown field"
RULE_MISSING = "required field is missing or null"
RULE_TYPE = "field must be a string"
RULE_ID = "id must be 1-100 letters, digits, '.', '_' or '-'"
RULE_LANG = "unknown language"
RULE_KIND = f"kind must be one of {list(KINDS)}"
RULE_EXISTS = "id already exists in the benchmark"
RULE_DUP_ID = "duplicate id within the drop"
RULE_TRANSLATION = "missing translation"
RULE_DISAGREE = "translations disagree"
RULE_TOO_MANY = "too many rows in the drop"
RULE_EMPTY = "the drop has no rows"


@dataclass
class DropRow:
    """One parsed row of a drop file, with where it came from."""

    key: str
    row: int
    data: dict[str, Any]


@dataclass
class StagedDrop:
    """A merged, validated copy of the benchmark in a temp folder, ready for apply_staged."""

    dir: Path
    files: dict[str, Path]  # language -> merged file in `dir`
    counts: dict[str, int]  # language -> rows the drop adds
    ids: list[str]  # new item ids
    keys: list[str]  # drop objects that were merged
    base_sha256: dict[str, str]  # language -> digest of the data_dir file it was merged with
    report: dict[str, Any] = field(default_factory=dict)  # validate_benchmark's report on the merged copy

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> StagedDrop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class StaleStaging(RuntimeError):
    """data_dir changed between stage_drop and apply_staged; stage again."""


def _named(drop_files: Mapping[str, str | Path] | Sequence[str | Path]) -> list[tuple[str, Path]]:
    """(object key, local path) pairs; a bare path is named by its file name."""
    if isinstance(drop_files, Mapping):
        return [(str(k), Path(p)) for k, p in drop_files.items()]
    return [(Path(p).name, Path(p)) for p in drop_files]


def _no_dup_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a repeated field is an error, not a silent last-one-wins."""
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"{RULE_DUP_FIELD}: '{k}'")
        seen[k] = v
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(key: str, row: int, raw: bytes) -> DropRow | Problem:
    """Decode and parse one line into a row, or the Problem that stops it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Problem(key, row, RULE_UTF8, str(e))
    try:
        obj = json.loads(text, object_pairs_hook=_no_dup_keys, parse_constant=_reject_constant)
    except RecursionError:
        return Problem(key, row, RULE_JSON, "nested too deeply")
    except ValueError as e:  # JSONDecodeError, duplicate field, NaN/Infinity
        rule = RULE_DUP_FIELD if str(e).startswith(RULE_DUP_FIELD) else RULE_JSON
        return Problem(key, row, rule, str(e))
    if not isinstance(obj, dict):
        return Problem(key, row, RULE_OBJECT, f"got {type(obj).__name__}")
    return DropRow(key, row, obj)


def read_drop_file(key: str, path: Path, max_row_bytes: int) -> tuple[list[DropRow], list[Problem]]:
    """Parse a drop file line by line; an oversized line is measured and skipped without being held in memory."""
    rows: list[DropRow] = []
    problems: list[Problem] = []
    limit = max_row_bytes + 2  # room for the line's "\r\n"
    with open(path, "rb") as fh:
        n = 0
        while chunk := fh.readline(limit):
            n += 1
            size = len(chunk)
            while len(chunk) == limit and not chunk.endswith(b"\n"):  # drain the rest of a huge line
                chunk = fh.readline(1 << 16)
                size += len(chunk)
                if not chunk:
                    break
            if size > limit or len(chunk.rstrip(b"\r\n")) > max_row_bytes:
                problems.append(Problem(key, n, RULE_HUGE, f"{size} bytes > limit {max_row_bytes}"))
                continue
            line = chunk.rstrip(b"\r\n")
            if not line.strip():
                continue  # blank lines are allowed, as in read_jsonl
            parsed = parse_line(key, n, line)
            (rows if isinstance(parsed, DropRow) else problems).append(parsed)
    return rows, problems


def check_row(r: DropRow, languages: Sequence[str]) -> list[Problem]:
    """Schema rules for one row on its own: known fields, required fields per kind, string types, id, language."""
    d, out = r.data, []

    def bad(rule: str, detail: str = "") -> None:
        out.append(Problem(r.key, r.row, rule, detail))

    for f in sorted(set(d) - set(ALL_FIELDS)):
        bad(RULE_UNKNOWN_FIELD, f"'{f}'; allowed: {list(ALL_FIELDS)}")
    for f in BASE_FIELDS:
        if d.get(f) is None:
            bad(RULE_MISSING, f"'{f}'")
    for f, v in d.items():
        if f in ALL_FIELDS and v is not None and not isinstance(v, str):
            bad(RULE_TYPE, f"'{f}' is {type(v).__name__}")
    if isinstance(d.get("id"), str) and not ID_RE.fullmatch(d["id"]):
        bad(RULE_ID, repr(d["id"])[:60])
    lang = d.get("lang")
    if lang is not None and lang not in languages:
        bad(RULE_LANG, f"{lang!r}; configured: {list(languages)}")
    kind = d.get("kind")
    if kind is not None and kind not in KINDS:
        bad(RULE_KIND, repr(kind)[:60])
    elif kind is not None:
        for f in KIND_FIELDS[kind]:
            if d.get(f) is None:
                bad(f"a {kind} item needs '{f}'")
        for other, fields in KIND_FIELDS.items():
            for f in fields:
                if other != kind and d.get(f) is not None:
                    bad(f"only {other} items carry '{f}'")
    return out


def existing_ids(data_dir: Path, languages: Sequence[str]) -> set[str]:
    """Every id already in the benchmark files of the configured languages."""
    ids: set[str] = set()
    for path in benchmark_files(data_dir, list(languages)).values():
        ids.update(str(r["id"]) for r in read_jsonl(path) if r.get("id") is not None)
    return ids


def check_items(rows: list[DropRow], languages: Sequence[str], known: set[str]) -> list[Problem]:
    """Rules across rows: ids new and unique per language, every language present, translations agreeing."""
    problems: list[Problem] = []
    first: dict[tuple[str, str], DropRow] = {}
    by_id: dict[str, list[DropRow]] = {}
    for r in rows:
        item, lang = r.data["id"], r.data["lang"]
        if item in known:
            problems.append(Problem(r.key, r.row, RULE_EXISTS, f"'{item}'"))
        if (item, lang) in first:
            f = first[(item, lang)]
            problems.append(Problem(r.key, r.row, RULE_DUP_ID, f"'{item}' in {lang}, first at {f.key}, row {f.row}"))
            continue
        first[(item, lang)] = r
        by_id.setdefault(item, []).append(r)
    for item, group in by_id.items():
        head = group[0]
        missing = [lang for lang in languages if lang not in {r.data["lang"] for r in group}]
        if missing:
            problems.append(Problem(head.key, head.row, RULE_TRANSLATION, f"item '{item}' has no row in {missing}"))
        for f in SHARED_FIELDS:
            values = {r.data.get(f) for r in group}
            if len(values) > 1:
                detail = f"'{f}' of item '{item}': " + ", ".join(f"{r.data['lang']}={r.data.get(f)!r}" for r in group)
                problems.append(Problem(head.key, head.row, RULE_DISAGREE, detail))
    return problems


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _line_count(data: bytes) -> int:
    """Physical lines, as read_jsonl numbers them (a last line without newline counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _row_json(d: dict[str, Any]) -> str:
    """A row as the benchmark writes it: schema field order, no nulls, UTF-8 text (ensure_ascii=False)."""
    return json.dumps({f: d[f] for f in ALL_FIELDS if d.get(f) is not None}, ensure_ascii=False)


def _merge(rows: list[DropRow], src: Path, dest: Path) -> tuple[dict[int, DropRow], str]:
    """Copy src to dest and append rows; returns merged line number -> drop row, and the digest of what was copied
    (apply_staged compares it, so a change to src after this read is caught)."""
    data = src.read_bytes()
    start = _line_count(data)
    with open(dest, "wb") as fh:
        fh.write(data)
        if data and not data.endswith(b"\n"):
            fh.write(b"\n")
        fh.write("".join(_row_json(r.data) + "\n" for r in rows).encode("utf-8"))
    return {start + i + 1: r for i, r in enumerate(rows)}, hashlib.sha256(data).hexdigest()


def _value(v: Any, n: int = 60) -> str:
    if v is None:
        return ""
    s = repr(v)
    return "value " + (s if len(s) <= n else s[: n - 3] + "...")


def _validate_merged(
    stage: Path, languages: list[str], limits: Mapping[str, int], origin: dict[str, dict[int, DropRow]], data_dir: Path
) -> tuple[dict[str, Any], list[Problem]]:
    """Run the project's suite on the staging copy; failures on drop rows are reported against key and row."""
    from safealign.validation import ValidationFailed, validate_benchmark  # GX import is slow: only when needed

    try:
        return validate_benchmark(stage, languages, {k: limits[k] for k in BENCHMARK_LIMITS}), []
    except ValidationFailed as e:
        failures = e.failures
    except DataError as e:  # existing data unreadable: not the drop's fault, but nothing can be merged
        return {}, [Problem(str(data_dir / Path(e.file).name), e.row, e.rule)]
    problems = []
    for f in failures:
        lang = Path(f.file).stem
        src = origin.get(lang, {}).get(f.row) if f.row is not None else None
        detail = ", ".join(x for x in (f"field '{f.field}'" if f.field else "", _value(f.value)) if x)
        if src is not None:
            problems.append(Problem(src.key, src.row, f.rule, detail))
        else:  # a rule broken by the merge on an existing row, e.g. a drop train prompt equal to an eval prompt
            problems.append(Problem(str(data_dir / f"{lang}.jsonl"), f.row, f.rule, detail))
    return {}, problems


def stage_drop(
    drop_files: Mapping[str, str | Path] | Sequence[str | Path],
    data_dir: str | Path,
    languages: Sequence[str],
    limits: Mapping[str, int] | None = None,
) -> StagedDrop:
    """Check a drop and merge it into a temp copy of data_dir (the benchmark folder); raise DropRejected listing
    every problem. data_dir itself is only read."""
    lim = DEFAULT_LIMITS | dict(limits or {})
    data_dir, languages = Path(data_dir), list(languages)
    files = _named(drop_files)
    problems: list[Problem] = []
    rows: list[DropRow] = []
    for key, path in files:
        got, bad = read_drop_file(key, path, lim["max_row_bytes"])
        rows += got
        problems += bad
    if len(rows) + len(problems) > lim["max_rows"]:
        raise DropRejected(problems=[Problem(None, None, RULE_TOO_MANY, f"more than {lim['max_rows']} rows")])
    for r in rows:
        problems += check_row(r, languages)
    bad_rows = {(p.key, p.row) for p in problems}
    sound = [r for r in rows if (r.key, r.row) not in bad_rows]
    problems += check_items(sound, languages, existing_ids(data_dir, languages))
    # An item is merged only if none of its rows has a problem (a half-broken item would break the parallel corpus).
    bad_rows = {(p.key, p.row) for p in problems}
    bad_items = {r.data.get("id") for r in rows if (r.key, r.row) in bad_rows}
    good = [r for r in sound if r.data["id"] not in bad_items]
    if not rows and not problems:
        problems.append(Problem(None, None, RULE_EMPTY, ", ".join(k for k, _ in files) or "no files"))

    stage = Path(tempfile.mkdtemp(prefix="safealign-drop-"))
    try:
        sources = benchmark_files(data_dir, languages)
        by_lang = {lang: [r for r in good if r.data["lang"] == lang] for lang in languages}
        merged = {lang: _merge(by_lang[lang], src, stage / src.name) for lang, src in sources.items()}
        origin = {lang: m[0] for lang, m in merged.items()}
        report: dict[str, Any] = {}
        if good:
            report, found = _validate_merged(stage, languages, lim, origin, data_dir)
            problems += found
        if problems:
            raise DropRejected(problems=sorted(set(problems), key=_order))
        return StagedDrop(
            dir=stage,
            files={lang: stage / src.name for lang, src in sources.items()},
            counts={lang: len(rs) for lang, rs in by_lang.items()},
            ids=sorted({r.data["id"] for r in good}),
            keys=[k for k, _ in files],
            base_sha256={lang: m[1] for lang, m in merged.items()},
            report=report,
        )
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _order(p: Problem) -> tuple[str, int, str]:
    return (p.key or "", p.row or 0, p.rule)


def apply_staged(staged: StagedDrop, data_dir: str | Path) -> dict[str, int]:
    """Replace data_dir's benchmark files with the staged ones: all or nothing; returns rows added per language.

    Each file is written beside its target and renamed over it (new inode: a DVC cache linked to the old file is
    never modified). If any write or rename fails, the files already replaced are restored from hard-link backups.
    """
    data_dir = Path(data_dir)
    targets = {lang: data_dir / src.name for lang, src in staged.files.items()}
    for lang, target in targets.items():
        if not target.exists() or _sha256(target) != staged.base_sha256[lang]:
            raise StaleStaging(f"{target} changed after the drop was staged; stage it again")
    tmps: dict[str, Path] = {}
    backups: dict[str, Path] = {}
    replaced: list[str] = []
    try:
        for lang, target in targets.items():  # phase 1: full new copies beside the targets; nothing visible yet
            fd, name = tempfile.mkstemp(dir=data_dir, prefix=f".{target.name}.", suffix=".tmp")
            tmps[lang] = Path(name)
            with os.fdopen(fd, "wb") as fh, open(staged.files[lang], "rb") as src:
                shutil.copyfileobj(src, fh)
                fh.flush()
                os.fsync(fh.fileno())
            shutil.copymode(target, name)
            backups[lang] = target.with_name(f".{target.name}.{os.getpid()}.bak")
            backups[lang].unlink(missing_ok=True)
            try:
                os.link(target, backups[lang])  # same inode, no copy
            except OSError:  # no hard links on this filesystem
                shutil.copy2(target, backups[lang])
        for lang, target in targets.items():  # phase 2: one atomic rename per file
            os.replace(tmps[lang], target)
            replaced.append(lang)
    except BaseException:
        for lang in reversed(replaced):  # undo: put the original inode back under its name
            os.replace(backups[lang], targets[lang])
        for p in [*tmps.values(), *backups.values()]:
            p.unlink(missing_ok=True)
        raise
    for p in backups.values():
        p.unlink(missing_ok=True)
    _fsync_dir(data_dir)
    log.info("applied drop %s: %s", staged.keys, staged.counts)
    return dict(staged.counts)


def _fsync_dir(path: Path) -> None:
    """Make the renames durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
