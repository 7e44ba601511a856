"""Great Expectations suites that guard every dataset before any compute is spent.

Each failed expectation becomes a `Failure` naming the file, row, field and rule; `validate_benchmark` raises a
`ValidationFailed` listing them all, so one run shows every problem instead of the first.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from safealign import paths
from safealign.data import (
    ALL_FIELDS,
    CATEGORIES,
    KIND_FIELDS,
    KINDS,
    REAL_FIELDS,
    REAL_LABELS,
    REAL_OPTIONAL,
    SPLITS,
    DataError,
    benchmark_files,
    read_jsonl,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
log = logging.getLogger(__name__)
MAX_LISTED = 50  # failures printed in the exception message; the report file has all of them


@dataclass
class Failure:
    file: str
    row: int | None
    field: str | None
    rule: str
    value: Any = None

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row is not None else "")
        where += f", field '{self.field}'" if self.field else ""
        value = f" (value: {_short(self.value)})" if self.value is not None else ""
        return f"{where}: {self.rule}{value}"


class ValidationFailed(DataError):
    def __init__(self, failures: list[Failure]):
        self.failures = failures
        lines = [str(f) for f in failures[:MAX_LISTED]]
        more = f"\n  ... and {len(failures) - MAX_LISTED} more" if len(failures) > MAX_LISTED else ""
        first = failures[0]
        super().__init__(first.file, first.row, first.field, first.rule)
        self.args = (f"data validation failed, {len(failures)} problem(s):\n  " + "\n  ".join(lines) + more,)


def _short(value: Any, n: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= n else s[: n - 3] + "..."


@cache
def _gx():
    """An ephemeral GX context (no project folder), built once per process: GX import costs ~4 s."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = ctx.data_sources.add_pandas("safealign").add_dataframe_asset("rows")
    return gx, ctx, batch.add_batch_definition_whole_dataframe("whole")


def benchmark_suite(lang: str, train_ids: frozenset[str], train_prompts: frozenset[str], limits: dict[str, int]):
    """The rules one benchmark file (one language) must satisfy."""
    import great_expectations.expectations as gxe

    gx, ctx, _ = _gx()
    lo, max_prompt, max_resp = limits["min_chars"], limits["max_prompt_chars"], limits["max_response_chars"]
    when = {"condition_parser": "pandas"}
    exps = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*ALL_FIELDS, "_file", "_row"],
            exact_match=True,
            meta={"rule": f"only the schema's fields are allowed: {list(ALL_FIELDS)}"},
        ),
        *[
            gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"rule": "required field is missing or null"})
            for c in ("id", "lang", "kind", "category", "split", "prompt", "reference")
        ],
        gxe.ExpectColumnValuesToBeInSet(
            column="lang", value_set=[lang], meta={"rule": f"lang must be '{lang}', the language of this file"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="kind", value_set=list(KINDS), meta={"rule": f"kind must be one of {list(KINDS)}"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), meta={"rule": f"split must be one of {list(SPLITS)}"}
        ),
        *[
            gxe.ExpectColumnValuesToBeInSet(
                column="category",
                value_set=list(cats),
                row_condition=f'kind=="{kind}"',
                **when,
                meta={"rule": f"category of a {kind} item must be one of {list(cats)}"},
            )
            for kind, cats in CATEGORIES.items()
        ],
        *[
            gxe.ExpectColumnValuesToNotBeNull(
                column=f, row_condition=f'kind=="{kind}"', **when, meta={"rule": f"a {kind} item needs '{f}'"}
            )
            for kind, fields in KIND_FIELDS.items()
            for f in fields
        ],
        *[
            gxe.ExpectColumnValuesToBeNull(
                column=f, row_condition=f'kind!="{kind}"', **when, meta={"rule": f"only {kind} items carry '{f}'"}
            )
            for kind, fields in KIND_FIELDS.items()
            for f in fields
        ],
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="prompt",
            min_value=lo,
            max_value=max_prompt,
            meta={"rule": f"length must be {lo}..{max_prompt} characters (data.max_prompt_chars)"},
        ),
        *[
            gxe.ExpectColumnValueLengthsToBeBetween(
                column=c,
                min_value=lo,
                max_value=max_resp,
                meta={"rule": f"length must be {lo}..{max_resp} characters (data.max_response_chars)"},
            )
            for c in ("reference", "compliant", "partial", "refusal")
        ],
        gxe.ExpectColumnValuesToMatchRegex(
            column="answer", regex=r"^[0-9]+$", meta={"rule": "a reasoning answer must be an integer in ASCII digits"}
        ),
        gxe.ExpectColumnValuesToBeUnique(column="id", meta={"rule": "duplicate id in this file"}),
        gxe.ExpectColumnValuesToBeUnique(column="prompt", meta={"rule": "duplicate prompt in this file"}),
        gxe.ExpectColumnValuesToNotBeInSet(
            column="id",
            value_set=sorted(train_ids),
            row_condition='split=="eval"',
            **when,
            meta={"rule": "an eval item's id is a train item in another language (splits must not share ids)"},
        ),
        gxe.ExpectColumnValuesToNotBeInSet(
            column="prompt",
            value_set=sorted(train_prompts),
            row_condition='split=="eval"',
            **when,
            meta={"rule": "this eval prompt also appears in the training split"},
        ),
    ]
    return gx.ExpectationSuite(name=f"benchmark-{lang}", expectations=exps)


def labeled_real_suite(lang: str, max_chars: int):
    """Rules for one file of annotated real responses."""
    import great_expectations.expectations as gxe

    gx, _, _ = _gx()
    when = {"condition_parser": "pandas"}
    harmful_labels = " or ".join(f'label=="{x}"' for x in ("compliance", "partial"))
    exps = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*REAL_FIELDS, "_file", "_row"],
            exact_match=True,
            meta={"rule": f"only these fields are allowed: {list(REAL_FIELDS)}"},
        ),
        *[
            gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"rule": "required field is missing or null"})
            for c in REAL_FIELDS
            if c not in REAL_OPTIONAL
        ],
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), meta={"rule": f"split must be one of {list(SPLITS)}"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="judge_split",
            value_set=["test"],
            row_condition='split=="eval"',
            **when,
            meta={"rule": "an answer to an eval-split prompt belongs to judge-test"},
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="judge_split",
            value_set=["train", "dev"],
            row_condition='split=="train"',
            **when,
            meta={"rule": "an answer to a train-split prompt belongs to judge-train or judge-dev"},
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="lang", value_set=[lang], meta={"rule": f"lang must be '{lang}', the language of this file"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="kind", value_set=list(REAL_LABELS), meta={"rule": f"kind must be one of {list(REAL_LABELS)}"}
        ),
        *[
            gxe.ExpectColumnValuesToBeInSet(
                column=col,
                value_set=list(labels),
                row_condition=f'kind=="{kind}"',
                **when,
                meta={"rule": f"{col} of a {kind} prompt's response must be one of {list(labels)}"},
            )
            for kind, labels in REAL_LABELS.items()
            for col in ("label", "first_label", "second_label")
        ],
        gxe.ExpectColumnValuesToBeInSet(
            column="harmful",
            value_set=[1],
            row_condition=harmful_labels,
            **when,
            meta={"rule": "harmful must be 1 for compliance or partial"},
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="harmful",
            value_set=[0],
            row_condition=f"not ({harmful_labels})",
            **when,
            meta={"rule": "harmful must be 0 unless the label is compliance or partial"},
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="response",
            min_value=0,
            max_value=max_chars,
            meta={"rule": f"a response may have at most {max_chars} characters"},
        ),
        gxe.ExpectColumnValuesToBeUnique(column="uid", meta={"rule": "duplicate uid in this file"}),
    ]
    return gx.ExpectationSuite(name=f"labeled-real-{lang}", expectations=exps)


def validate_labeled_real(
    real_dir: str | Path, languages: list[str], max_chars: int = 4000, splits: dict[str, str] | None = None
) -> tuple[int, list[Failure]]:
    """(rows, failures) of the annotated real responses present for the configured languages; with `splits`
    (benchmark id -> split), each answer's item must exist there and carry the same split."""
    rows, failures = 0, []
    for lang in languages:
        f = Path(real_dir) / f"{lang}.jsonl"
        if not f.exists():
            continue
        df = pd.DataFrame(read_jsonl(f))
        for col in REAL_FIELDS:
            if col not in df:
                df[col] = None
        rows += len(df)
        failures.extend(run_suite(labeled_real_suite(lang, max_chars), df, str(f)))
        for r in df.to_dict("records") if splits is not None else ():
            if r["id"] not in splits:
                failures.append(Failure(str(f), r["_row"], "id", "the answer's item is not in the benchmark", r["id"]))
            elif r["split"] != splits[r["id"]]:
                failures.append(
                    Failure(
                        str(f),
                        r["_row"],
                        "split",
                        f"the item's split in the benchmark is '{splits[r['id']]}'",
                        r["split"],
                    )
                )
    return rows, failures


def run_suite(suite, df: pd.DataFrame, file: str) -> list[Failure]:
    """Run a suite on a frame that has a `_row` column; turn each unexpected value into a Failure."""
    gx, ctx, batch_def = _gx()
    suite = ctx.suites.add_or_update(suite)
    vd = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{suite.name}-{Path(file).name}", data=batch_def, suite=suite)
    )
    res = vd.run(
        batch_parameters={"dataframe": df},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]},
    )
    failures: list[Failure] = []
    for r in res.results:
        if r.success:
            continue
        cfg = r.expectation_config
        rule = (cfg.meta or {}).get("rule", cfg.type)
        column = cfg.kwargs.get("column")
        if r.exception_info and r.exception_info.get("raised_exception"):
            failures.append(
                Failure(file, None, column, f"{rule}: check could not run", r.exception_info.get("exception_message"))
            )
            continue
        rows = r.result.get("unexpected_index_list")
        if rows:
            failures.extend(Failure(file, int(u["_row"]), column, rule, u.get(column)) for u in rows)
        else:  # table-level expectation, e.g. unexpected columns
            details = r.result.get("details", {}).get("mismatched") or r.result.get("observed_value")
            failures.append(Failure(file, None, column, rule, details))
    return failures


def validate_benchmark(
    data_dir: str | Path, languages: list[str], limits: dict[str, int], real_dir: str | Path | None = None
) -> dict[str, Any]:
    """Validate every language file (and the annotated real responses in `real_dir`, if given); return a report,
    or raise ValidationFailed naming each bad row."""
    files = benchmark_files(data_dir, languages)
    frames = {}
    for lang, path in files.items():
        df = pd.DataFrame(read_jsonl(path))  # bad JSON raises DataError(file, row) here
        for col in ALL_FIELDS:
            if col not in df:
                df[col] = None
        frames[lang] = df
    everything = pd.concat(frames.values(), ignore_index=True)
    train = everything[everything["split"] == "train"]
    train_ids = frozenset(train["id"].dropna().astype(str))
    train_prompts = frozenset(train["prompt"].dropna().astype(str))

    failures: list[Failure] = []
    report: dict[str, Any] = {"files": {}}
    for lang, df in frames.items():
        f = run_suite(benchmark_suite(lang, train_ids, train_prompts, limits), df, str(files[lang]))
        failures.extend(f)
        report["files"][str(files[lang])] = {
            "rows": len(df),
            "failures": len(f),
            "by_kind": {k: int(v) for k, v in df["kind"].value_counts().items()},
        }
    # Parallel corpus: every language must hold the same ids (languages are compared on the same content).
    ids = {lang: set(df["id"].dropna()) for lang, df in frames.items()}
    reference_lang = languages[0]
    for lang, s in ids.items():
        for missing in sorted(ids[reference_lang] - s):
            failures.append(
                Failure(str(files[lang]), None, "id", f"item '{missing}' of {reference_lang} has no translation here")
            )
        for extra in sorted(s - ids[reference_lang]):
            row = int(frames[lang].loc[frames[lang]["id"] == extra, "_row"].iloc[0])
            failures.append(Failure(str(files[lang]), row, "id", f"item '{extra}' is missing from {reference_lang}"))
    if real_dir is not None:
        splits = dict(zip(everything["id"].astype(str), everything["split"].astype(str)))
        real_rows, real_failures = validate_labeled_real(real_dir, languages, splits=splits)
        failures.extend(real_failures)
        report["labeled_real_rows"] = real_rows
    report["success"] = not failures
    report["rows"] = len(everything)
    report["failures"] = [asdict(f) | {"value": _short(f.value)} for f in failures]
    if failures:
        raise ValidationFailed(failures)
    return report


def check_trainer_params(params) -> None:
    """Build every TRL config from params now, so a misspelled or mistyped trainer field fails here, before any
    compute, instead of minutes into a later stage."""
    from safealign.train import grpo, ppo, reward, sft

    for trainer in (sft, reward, ppo, grpo):
        trainer.trainer_config(params, f"{paths.CHECKPOINTS}/validate")


def check_coverage(params) -> None:
    """Every harm category is evaluated and on the safety curve: a per-language item count smaller than the number
    of harm categories in the eval split would silently drop some (the subsample is stratified by category)."""
    from safealign.config import ConfigError
    from safealign.data import load_benchmark

    df = load_benchmark(params.data.dir, params.data.languages)
    categories = df[(df.split == "eval") & (df.kind == "harmful")]["category"].nunique()
    wanted = {
        "evaluate.items_per_language.harmful": (params.evaluate.items_per_language or {}).get("harmful"),
        "curve.items_per_language": params.curve.items_per_language or None,
    }
    for key, n in wanted.items():
        if n is not None and n < categories:
            hint = "null for all items" + (", 0 for no curve" if key.startswith("curve") else "")
            raise ConfigError(
                f"params.yaml: {key} = {n} leaves harm categories out: the eval split has "
                f"{categories}; use at least {categories} ({hint})"
            )
