"""Rewrite the `src/` deps of every dvc.yaml stage from the stage's transitive imports (tests/test_dvc_deps.py
fails while they differ). Other deps (data, models, metrics) and comments are kept.

    python tools/sync_dvc_deps.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_dvc_deps import RESOURCES, closure, module_file, stages  # noqa: E402


def needed(module: str) -> list[str]:
    mods = closure(module)
    paths = {str(module_file(m).relative_to(ROOT)) for m in mods} | {RESOURCES[m] for m in mods if m in RESOURCES}
    paths.discard("src/safealign/__init__.py")
    return sorted(paths)


def main() -> None:
    path = ROOT / "dvc.yaml"
    lines = path.read_text().splitlines()
    by_stage = {name: needed(module) for name, module, _ in stages()}
    out, stage, in_deps, indent = [], None, False, ""
    for line in lines:
        m = re.match(r"^  (\w+):\s*$", line)
        if m:
            stage = m.group(1)
        if re.match(r"^\s+deps:\s*$", line):
            in_deps, indent = True, re.match(r"^(\s+)", line).group(1) + "  "
            out.append(line)
            continue
        if in_deps:
            if line.startswith(indent + "- "):
                if not line.strip()[2:].startswith("src/"):
                    out.append(line)
                continue
            out.extend(f"{indent}- {p}" for p in by_stage[stage])
            in_deps = False
        out.append(line)
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
