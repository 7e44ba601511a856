"""dvc.yaml's deps are right by construction: every project module a stage imports, directly or not, is a dep of
that stage, or a change to it would leave the stage's cached outputs stale without a word."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# package data a module reads at run time: a dep wherever the module is imported
RESOURCES = {"safealign.judge": "src/safealign/resources/lexicon"}


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def imports_of(name: str) -> set[str]:
    """The safealign modules `name` imports anywhere in its file (function-level imports included)."""
    tree = ast.parse(module_file(name).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("safealign"):
            found.add(node.module)
            for alias in node.names:  # `from safealign import judging`
                if module_file(f"{node.module}.{alias.name}"):
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("safealign"))
    return {m for m in found if module_file(m) and m != "safealign"}


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(imports_of(m) - seen)
    return seen


def stages() -> list[tuple[str, str, list[str]]]:
    """(stage, entry module, deps) for every stage of dvc.yaml (foreach stages once, with their template deps)."""
    out = []
    for name, st in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = st.get("do", st)
        module = body["cmd"].split("-m ", 1)[1].split()[0]
        out.append((name, module, [str(d) for d in body.get("deps", [])]))
    return out


def missing_deps(module: str, deps: list[str]) -> list[str]:
    def covered(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)

    needed = {str(module_file(m).relative_to(ROOT)) for m in closure(module)}
    needed |= {RESOURCES[m] for m in closure(module) if m in RESOURCES}
    needed.discard("src/safealign/__init__.py")
    return sorted(p for p in needed if not covered(p))


@pytest.mark.parametrize("stage,module,deps", stages(), ids=[s[0] for s in stages()])
def test_every_imported_module_is_a_dep(stage, module, deps):
    assert missing_deps(module, deps) == [], f"dvc.yaml stage {stage} misses deps"


def test_the_check_fails_when_a_dep_is_removed():
    stage, module, deps = next(s for s in stages() if s[0] == "ppo")
    dropped = [d for d in deps if d != "src/safealign/models.py"]
    assert missing_deps(module, dropped) == ["src/safealign/models.py"]
