"""I/O tasks around the pipeline: the MLflow parent run and the Prefect artifacts. These retry with backoff
(a tracking server or its store can blip); the training steps do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from safealign import tracking

RETRY = {"retries": 3, "retry_delay_seconds": [2, 8, 30]}


@task(name="mlflow-start-parent", **RETRY)
def start_parent(experiment: str, name: str, tags: dict[str, str]) -> str:
    """Open the MLflow parent run of this pipeline execution."""
    return tracking.start_parent(experiment, name, tags)


@task(name="mlflow-end-parent", **RETRY)
def end_parent(run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """Close the parent run as FINISHED or FAILED."""
    tracking.end_parent(run_id, status, tags)


def _fmt(block: dict[str, Any] | None) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    lo, hi = block["ci95"]
    return f"{block['value']:.2f} [{lo:.2f}, {hi:.2f}] (n={block['n']})"


@task(name="publish-summary", **RETRY)
def publish_summary(repo: Path, arms: list[str], ran: dict[str, bool]) -> str:
    """A markdown artifact: per arm and language, the safety metrics; the headline next to the paper's."""
    metrics = ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency", "reasoning_accuracy")
    lines = ["## Per arm and language", "", "| arm | lang | " + " | ".join(metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]  # fmt: skip
    for arm in arms:
        path = repo / "metrics" / "eval" / f"{arm}.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        for lang, block in [("all", m["overall"]), *m["per_language"].items()]:
            lines.append(f"| {arm} | {lang} | " + " | ".join(_fmt(block.get(k)) for k in metrics) + " |")
    head = repo / "metrics" / "headline.json"
    if head.exists():
        h = json.loads(head.read_text())
        lines += ["", "## Headline (hybrid vs pure RL)", "", "| figure | measured | paper |", "|---|---|---|"]
        for k, paper in h.get("paper", {}).items():
            v = h.get(k)
            lines.append(f"| {k} | {'n/a' if v is None else f'{v:.1%}'} | {paper:.0%} |")
    lines += ["", "Stages run (False: DVC found them up to date): " + ", ".join(f"{k}={v}" for k, v in ran.items())]
    report = repo / "reports" / "report.md"
    if report.exists():  # the full report (stage report); the HTML version is an MLflow artifact of the parent run
        lines += ["", f"HTML report: {report.with_suffix('.html')}", "", report.read_text()]
    body = "\n".join(lines)
    create_markdown_artifact(key="hybrid-train-summary", markdown=body, description="hybrid-train results")
    return body
