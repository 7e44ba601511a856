"""The import direction holds: library core <- stage entry points <- Prefect tasks <- flows. Nothing imports an
entry point; the core imports neither Prefect nor DVC, and only safealign.tracking imports MLflow. The pipeline's
paths (models/, metrics/, eval/, reports/, checkpoints/) are spelled only in safealign.paths."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def files(*globs: str) -> list[Path]:
    return sorted(p for g in globs for p in ROOT.glob(g))


CORE = [p for p in files("src/safealign/**/*.py") if "stages" not in p.parts]
STAGES = files("src/safealign/stages/*.py")


def under(mods: set[str], *prefixes: str) -> set[str]:
    return {m for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_entry_point_and_no_orchestrator(path):
    mods = imports(path)
    assert not under(mods, "safealign.stages", "tasks", "flows", "prefect", "dvc"), path
    if path.name != "tracking.py":
        assert not under(mods, "mlflow"), f"{path}: only safealign.tracking talks to MLflow"


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.name)
def test_stages_are_mains_over_the_core(path):
    mods = imports(path)
    assert not under(mods, "safealign.stages") - under(mods, "safealign.stages.common"), path
    assert not under(mods, "tasks", "flows", "prefect", "mlflow"), path


@pytest.mark.parametrize(
    "path", files("tasks/*.py", "flows/*.py", "bench/*.py", "tools/**/*.py"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_nothing_imports_an_entry_point(path):
    mods = imports(path)
    assert not under(mods, "safealign.stages"), f"{path} imports an entry point"
    if path.parts[-2] == "tasks":
        assert not under(mods, "flows"), path


def test_the_check_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from safealign.stages.ppo import main\n")
    assert under(imports(bad), "safealign.stages") == {"safealign.stages.ppo", "safealign.stages.ppo.main"}


PIPELINE_PATH = re.compile(r"^(models|metrics|eval|reports|checkpoints)/")


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def path_literals(path: Path) -> list[str]:
    """Strings (f-string parts included) that start like a pipeline path, outside docstrings and MLflow's metric
    `prefix=` arguments. An f-string that opens with a value (f"{root}/metrics/...") is not seen."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED) and ast.get_docstring(node, clean=False) is not None:
            skip.add(id(node.body[0].value))
        if isinstance(node, ast.keyword) and node.arg == "prefix":
            skip.update(id(n) for n in ast.walk(node.value))
    return [
        f"{path.name}:{n.lineno}: {n.value!r}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and id(n) not in skip
        and PIPELINE_PATH.match(n.value)
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in files("src/safealign/**/*.py", "tasks/*.py", "flows/*.py") if p.name != "paths.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pipeline_paths_are_spelled_only_in_paths(path):
    assert not path_literals(path), "use safealign.paths"


def test_the_path_check_sees_a_literal(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Writes metrics/eval/<arm>.json."""\n'
        'def f(arm):\n    log(m, prefix="eval/")\n    return open(f"metrics/eval/{arm}.json"), "models/reward"\n'
    )
    assert sorted(path_literals(bad)) == ["bad.py:4: 'metrics/eval/'", "bad.py:4: 'models/reward'"]
