"""The champion gate as a Prefect task: register the new hybrid, re-evaluate the champion, promote or keep."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from safealign import gate, paths, tracking
from safealign.compute import ComputeMeter
from safealign.config import Params


@task(name="champion-gate")
def champion_gate(repo: Path, params: Params, parent_run_id: str) -> dict:
    """Register models/ppo/<gate.arm> as a candidate; alias it `champion` only if it does not regress."""
    from safealign.evaluation import evaluate_model

    logger = get_run_logger()
    g = params.gate
    new_metrics = json.loads((repo / paths.eval_metrics(g.arm)).read_text())
    # lineage parents (models/sft -> models/base) are repo-relative
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(repo):
        merged = gate.export_merged(params.evaluate.arms[g.arm], Path(tmp) / "policy")
        version = tracking.register_candidate(g.registered_model, merged, parent_run_id)
    champion = tracking.champion_version(g.registered_model)
    champion_metrics = None
    if champion is not None:
        logger.info("re-evaluating champion v%s on the same prompts and judge", champion.version)
        # same prompts, judge and detector files as the candidate's evaluation (paths in params are repo-relative)
        with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(repo), ComputeMeter("gate") as meter:
            local = tracking.download_champion(g.registered_model, Path(tmp) / "champion")
            _, champion_metrics = evaluate_model(params, str(local), meter)
    decision = gate.decide(new_metrics, champion_metrics, g.tolerance, g.languages)
    if decision.promote:
        tracking.set_champion(g.registered_model, version)
    tags = {
        "gate.decision": "promoted" if decision.promote else "kept_champion",
        "gate.candidate_version": str(version),
        "gate.champion_version": str(champion.version if champion else "none"),
        "gate.regressions": "; ".join(decision.regressions)[:4000] or "none",
    }
    tracking.set_tags(tags, run_id=parent_run_id)
    tracking.tag_model_version(g.registered_model, version, tags)
    lines = [
        f"## Champion gate: {decision.summary()}",
        "",
        f"candidate: {g.registered_model} v{version}",
        f"champion before: {f'v{champion.version}' if champion else 'none'}",
        "",
        "### Checks",
        "",
    ]
    lines += [f"- REGRESSION {r}" for r in decision.regressions] + [f"- ok {r}" for r in decision.reasons]
    create_markdown_artifact(key="champion-gate", markdown="\n".join(lines), description="nightly champion gate")
    logger.info(decision.summary())
    return {"promoted": decision.promote, "version": version, "regressions": decision.regressions}
