"""Stage validate: run the Great Expectations suites on every dataset before any training.

A failure exits non-zero with one line per bad value (file, row, field, rule); DVC then runs no stage that
depends on the report, so no training starts and no earlier model is touched.
"""

from __future__ import annotations

import logging
import sys

from safealign.stages.common import run_main, setup, write_json
from safealign.tracking import log_dict_metrics, stage_run
from safealign.validation import ValidationFailed, validate_benchmark

OUT = "metrics/validation.json"
log = logging.getLogger(__name__)


def check_trainer_params(params) -> None:
    """Build every TRL config from params now, so a misspelled trainer field fails here, before any compute,
    instead of minutes into a later stage."""
    from safealign.stages import grpo, ppo, reward, sft

    for stage in (sft, reward, ppo, grpo):
        stage.trainer_config(params, "checkpoints/validate")


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
            raise ConfigError(
                f"params.yaml: {key} = {n} leaves harm categories out: the eval split has {categories}; "
                f"use at least {categories} (null for all items{', 0 for no curve' if key.startswith('curve') else ''})"
            )


def main(argv: list[str] | None = None) -> None:
    params, _ = setup("validate", argv)
    d = params.data
    limits = {
        "min_chars": d.min_chars,
        "max_prompt_chars": d.max_prompt_chars,
        "max_response_chars": d.max_response_chars,
    }
    check_trainer_params(params)
    check_coverage(params)
    try:
        with stage_run("validate", params.mlflow.experiment, {"data": params.to_dict()["data"]}) as run:
            try:
                report = validate_benchmark(d.dir, d.languages, limits, d.labeled_real_dir)
            except ValidationFailed as e:
                import mlflow

                mlflow.set_tag("validation_error", str(e)[:4000])
                raise
            log_dict_metrics({"rows": report["rows"], "files": len(report["files"])}, prefix="validate/")
            log.info("mlflow run %s", run.info.run_id)
    except ValidationFailed as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    write_json(OUT, report)
    log.info("validated %d rows in %d files: ok", report["rows"], len(report["files"]))


if __name__ == "__main__":
    run_main(main)
