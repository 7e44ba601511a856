"""Stage validate: params and every dataset checked before any training.

First every trainer's `args` against its TRL config and the evaluation's coverage of the harm categories, then
the Great Expectations suites (safealign.validation). A failure exits non-zero with one line per bad value (file,
row, field, rule); DVC then runs no stage that depends on the report, so no training starts and no earlier model
is touched.
"""

from __future__ import annotations

import logging
import sys

from safealign import paths, tracking
from safealign.io import write_json
from safealign.stages.common import run_main, stage_main
from safealign.validation import ValidationFailed, check_coverage, check_trainer_params, validate_benchmark

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    try:
        with stage_main("validate", argv, sections=("data",)) as run:
            d = run.params.data
            check_trainer_params(run.params)
            check_coverage(run.params)
            limits = {
                "min_chars": d.min_chars,
                "max_prompt_chars": d.max_prompt_chars,
                "max_response_chars": d.max_response_chars,
            }
            try:
                report = validate_benchmark(d.dir, d.languages, limits, d.labeled_real_dir)
            except ValidationFailed as e:
                tracking.set_tags({"validation_error": str(e)[:4000]})
                raise
            tracking.log_dict_metrics({"rows": report["rows"], "files": len(report["files"])}, prefix="validate/")
    except ValidationFailed as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    write_json(paths.VALIDATION, report)
    log.info("validated %d rows in %d files: ok", report["rows"], len(report["files"]))


if __name__ == "__main__":
    run_main(main)
