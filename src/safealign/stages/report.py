"""Stage report: the run's report as reports/report.html (self-contained) and reports/report.md, logged as MLflow
artifacts of its stage run and of the pipeline's parent run; metrics/plots/arms.csv feeds `dvc plots`.

The Prefect flow publishes reports/report.md as its markdown artifact. This is the last stage: for a plain
`dvc repro` it also closes the parent run.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from safealign import paths, tracking
from safealign.report import RATES, collect, markdown, render_html
from safealign.stages.common import run_main, stage_main
from safealign.tracking import data_version, git_commit

log = logging.getLogger(__name__)
HTML, MD, ARMS_CSV = Path(paths.REPORT_HTML), Path(paths.REPORT_MD), Path(paths.ARMS_PLOT)


def write_arms_csv(d: dict, path: Path) -> None:
    """One row per arm: its rates pooled over the languages where they are measurements (blank where none is),
    so `dvc plots` draws one bar per arm. Per-language rates are in the report and metrics/eval/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "measured_languages", *RATES])
        for arm, m in d["eval"].items():
            overall = m.get("overall") or {}
            w.writerow(
                [
                    arm,
                    " ".join(m.get("measured_languages") or []),
                    *((overall.get(k) or {}).get("value") for k in RATES),
                ]
            )


def main(argv: list[str] | None = None) -> None:
    with stage_main("report", argv, sections=("evaluate",), final=True) as run:
        params = run.params
        d = collect(Path("."), list(params.evaluate.arms))
        HTML.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "git commit": git_commit()[:12],
            "data version": data_version("data.dvc")[:12],
            "judge": next((m.get("judge") for m in d["eval"].values()), "?"),
            "model profile": params.model.profile,
        }
        HTML.write_text(render_html(d, meta=meta))
        MD.write_text(markdown(d))
        write_arms_csv(d, ARMS_CSV)
        tracking.log_artifact(HTML)
        tracking.log_artifact(MD)
        parent_id, _ = tracking.resolve_parent(params.mlflow.experiment)
        tracking.log_artifact(HTML, run_id=parent_id)
        log.info("report: %s (%d arms)", HTML.resolve(), len(d["eval"]))


if __name__ == "__main__":
    run_main(main)
