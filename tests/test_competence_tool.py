"""tools/annotation/competence.py: two blind passes merge into final values only through a written adjudication."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "annotation" / "competence.py"


@pytest.fixture
def competence(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TOOL.parent))
    spec = importlib.util.spec_from_file_location("competence_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "competence_tool", mod)
    spec.loader.exec_module(mod)
    monkeypatch.chdir(tmp_path)  # the candidate's work folder is relative: annotation/competence/<name>
    monkeypatch.setattr(mod, "OUT", tmp_path / "out")
    return mod


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_merge_needs_an_adjudication_for_every_disagreement(competence):
    c = competence.CANDIDATES["smollm2"]
    write(
        c.file("answers.jsonl"),
        [{"uid": u, "id": u, "lang": "en", "kind": "benign", "response": "..."} for u in ("a", "b")],
    )
    one = {"same_language": True, "rationale": "r"}
    write(
        c.work / "pass1_en_labels.jsonl",
        [
            {"uid": "a", "label": "helpful", "fluent": True} | one,
            {"uid": "b", "label": "refusal", "fluent": True} | one,
        ],
    )
    write(
        c.work / "pass2_en_labels.jsonl",
        [
            {"uid": "a", "label": "helpful", "fluent": True} | one,
            {"uid": "b", "label": "off_topic", "fluent": False} | one,
        ],
    )
    with pytest.raises(ValueError, match=r"2 disagreements not adjudicated.*b\.label.*b\.fluent"):
        competence.merge(c)
    assert not c.file("annotated.jsonl").exists()

    write(c.file("adjudications.jsonl"), [{"uid": "b", "label": "off_topic", "fluent": False, "reason": "an echo"}])
    summary = competence.merge(c)
    rows = {r["uid"]: r for r in map(json.loads, c.file("annotated.jsonl").read_text().splitlines())}
    assert rows["a"]["label"] == "helpful" and rows["a"]["adjudication"] is None
    assert (rows["b"]["first_label"], rows["b"]["second_label"], rows["b"]["label"]) == (
        "refusal",
        "off_topic",
        "off_topic",
    )
    assert rows["b"]["fluent"] is False and rows["b"]["adjudication"]["reason"] == "an echo"
    assert summary["disagreements"] == {"label": 1, "fluent": 1, "same_language": 0}
    assert summary["agreement_label"] == 0.5
