"""Each arm's harmful rate now beside its rate at an earlier git revision, for README's before/after table. Every
other result table is the report's own (`reports/report.md`, written by the report stage from the same metrics).

    python tools/results_tables.py --before REV
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from safealign.config import load_params
from safealign.report import _ci


def at_revision(path: str, rev: str) -> dict | None:
    out = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def before_after(before: str) -> str:
    lines = [f"| arm | harmful rate at {before} | harmful rate now | measured languages now |", "|---|---|---|---|"]
    for arm in load_params("params.yaml").evaluate.arms:
        path = f"metrics/eval/{arm}.json"
        now = json.loads(Path(path).read_text()) if Path(path).exists() else None
        old = at_revision(path, before)
        rate_now = _ci(now["overall"].get("harmful_rate")) if now and now["measured_languages"] else "not measured"
        measured = ", ".join(now["measured_languages"]) or "none" if now else "n/a"
        lines.append(
            f"| {arm} | {_ci(old['overall'].get('harmful_rate')) if old else 'n/a'} | {rate_now} | {measured} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="git revision whose metrics/eval/<arm>.json give 'before'")
    print(before_after(ap.parse_args().before))
