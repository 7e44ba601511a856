"""I/O tasks around the pipeline: the MLflow parent run and the Prefect artifacts. These retry with backoff
(a tracking server or its store can blip); the training steps do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from safealign import paths, tracking

RETRY = {"retries": 3, "retry_delay_seconds": [2, 8, 30]}


@task(name="mlflow-start-parent", **RETRY)
def start_parent(experiment: str, name: str, tags: dict[str, str]) -> str:
    """Open the MLflow parent run of this pipeline execution."""
    return tracking.start_parent(experiment, name, tags)


@task(name="mlflow-end-parent", **RETRY)
def end_parent(run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """Close the parent run as FINISHED or FAILED."""
    tracking.end_parent(run_id, status, tags)


def _fmt(block: dict[str, Any] | None, pct: bool = True) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    f = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.2f}")
    lo, hi = block.get("ci95") or (None, None)
    return f"{f(block['value'])} [{f(lo)}, {f(hi)}]" if lo is not None else f(block["value"])


def summary_markdown(repo: Path, arms: list[str], ran: dict[str, bool], report_link: str | None = None) -> str:
    """The run at a glance: the headline (a few lines), one row per arm, then where the full report is."""
    head = json.loads((repo / paths.HEADLINE).read_text()) if (repo / paths.HEADLINE).exists() else {}
    ms = head.get("matched_safety", {}).get("vs_pure_rl", {}).get("hybrid", {})
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    ci = lambda c: "" if not c or c[0] is None else f" [{c[0]:.1%}, {c[1]:.1%}]"  # noqa: E731
    lines = [
        "## Headline: hybrid vs pure RL",
        "",
        "| figure | measured (95% interval) | paper |",
        "|---|---|---|",
        f"| harmful-rate reduction ({head.get('basis', 'configured_budget').replace('_', ' ')}) | "
        f"{pct(head.get('harmful_rate_reduction_vs_pure_rl'))}{ci(head.get('harmful_rate_reduction_ci95'))} | 42% |",
        f"| compute saving at matched safety | "
        f"{pct(ms.get('compute_saving_to_target'))}{ci(ms.get('compute_saving_to_target_ci95'))} | 37% |",
        f"| compute saving, configured budgets | {pct(head.get('compute_saving_vs_pure_rl'))} | 37% |",
        "",
        f"Measured languages: {', '.join(head.get('languages', [])) or 'none'}"
        + (f". {ms['note']}" if ms.get("note") else ""),
        "",
        "## Arms (measured languages)",
        "",
        "| arm | harmful | off-topic | over-refusal | language | reasoning |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        path = repo / paths.eval_metrics(arm)
        if path.exists():
            o = json.loads(path.read_text())["overall"]
            keys = ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency", "reasoning_accuracy")
            lines.append(f"| {arm} | " + " | ".join(_fmt(o.get(k)) for k in keys) + " |")
    lines += [
        "",
        f"Full report (per language, judge, curves, compute): {report_link or repo / paths.REPORT_HTML}",
        "",
        "Stages run (False: DVC found them up to date): " + ", ".join(f"{k}={v}" for k, v in ran.items()),
    ]
    return "\n".join(lines)


@task(name="publish-summary", **RETRY)
def publish_summary(repo: Path, arms: list[str], ran: dict[str, bool], parent_run_id: str | None = None) -> str:
    """A markdown artifact that leads with the headline, then the arm table, then a link to the full report."""
    link = None
    if parent_run_id:
        mlflow = tracking._mlflow()
        link = f"{mlflow.MlflowClient().get_run(parent_run_id).info.artifact_uri}/report.html (MLflow parent run)"
    body = summary_markdown(repo, arms, ran, link)
    create_markdown_artifact(key="hybrid-train-summary", markdown=body, description="hybrid-train results")
    return body
