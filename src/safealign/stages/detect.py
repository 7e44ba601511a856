"""Stage detect: choose the judge on annotated real answers, and say in which languages it can be trusted.

The core is safealign.judging (run_detection): candidates fit on judge-train, settings and the judge chosen on
judge-dev, every candidate scored per language on judge-test against `detect.targets`, inter-annotator kappa.

Outputs: models/detector (the fitted judges and judge.json: which one, with which settings), metrics/detection.json
(the judge, where it is validated, each candidate's judge-test scores), metrics/judge.json (every table),
metrics/summary/detect.json (DVC metrics), metrics/plots/detection.csv.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from safealign import paths, tracking
from safealign.io import atomic_dir, write_json
from safealign.judging import plot_rows, run_detection
from safealign.stages.common import run_main, stage_main

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("detect", argv, sections=("detect", "data")) as run:
        with run.meter, atomic_dir(paths.DETECTOR) as tmp:
            result, detail = run_detection(run.params, tmp, run.meter)
        write_json(paths.DETECTION, result)
        write_json(paths.JUDGE_REPORT, detail)
        chosen = result["judge_test"][result["best_judge"]]
        rounded = {k: None if chosen[k] is None else round(chosen[k], 3) for k in ("accuracy", "f1")}
        write_json(
            paths.summary("detect"),
            {
                "judge": result["best_judge"],
                "acc": rounded["accuracy"],
                "f1": rounded["f1"],
                "languages": len(result["validated_languages"]),
            },
        )
        Path(paths.PLOTS).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(plot_rows(detail)).to_csv(paths.DETECTION_PLOT, index=False)
        tracking.log_dict_metrics(
            {"judge_test": result["judge_test"], "kappa": result["kappa"] or 0.0}, prefix="detect/"
        )
        tracking.set_tags(
            {"best_judge": result["best_judge"], "validated_languages": ",".join(result["validated_languages"])}
        )
        tracking.log_artifact(paths.JUDGE_REPORT)
        for name, s in result["judge_test"].items():
            log.info("judge-test %-12s accuracy %s  F1 %s  FPR %s", name, *(s[k] for k in ("accuracy", "f1", "fpr")))
        log.info(
            "judge: %s; validated in %s; not in %s",
            result["best_judge"],
            result["validated_languages"],
            sorted(result["not_validated"]),
        )


if __name__ == "__main__":
    run_main(main)
