"""Bad input gets a clear error naming the file, row, field and rule, before any compute."""

import json
import shutil

import pytest

from safealign.data import DataError
from safealign.validation import ValidationFailed, validate_benchmark

LIMITS = {"min_chars": 2, "max_prompt_chars": 300, "max_response_chars": 400}


@pytest.fixture
def data(tmp_path, benchmark_dir):
    d = tmp_path / "benchmark"
    shutil.copytree(benchmark_dir, d)
    return d


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def save(path, rs):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs))


def edit(path, row: int, **fields):
    rs = rows(path)
    rs[row - 1].update(fields)
    save(path, rs)


def test_fixture_is_valid(data):
    report = validate_benchmark(data, ["en", "zh"], LIMITS)
    assert report["success"] and report["rows"] == 52


def failure_text(data, langs=("en", "zh")):
    with pytest.raises(ValidationFailed) as e:
        validate_benchmark(data, list(langs), LIMITS)
    return e.value, str(e.value)


@pytest.mark.parametrize(
    ("row", "fields", "field", "rule"),
    [
        (3, {"lang": "de"}, "lang", "lang must be 'en'"),
        (3, {"kind": "dangerous"}, "kind", "kind must be one of"),
        (3, {"split": "test"}, "split", "split must be one of"),
        (3, {"category": "jokes"}, "category", "category of a harmful item must be one of"),
        (3, {"prompt": None}, "prompt", "required field is missing or null"),
        (3, {"compliant": None}, "compliant", "a harmful item needs 'compliant'"),
        (3, {"prompt": "x" * 301}, "prompt", "length must be 2..300"),
        (3, {"answer": "42"}, "answer", "only reasoning items carry 'answer'"),
    ],
)
def test_bad_field_names_file_row_field_rule(data, row, fields, field, rule):
    edit(data / "en.jsonl", row, **fields)
    err, text = failure_text(data)
    assert any(f.row == row and f.field == field and rule in f.rule for f in err.failures), text
    assert f"en.jsonl, row {row}, field '{field}'" in text


def test_non_integer_answer(data):
    rs = rows(data / "en.jsonl")
    n = next(i for i, r in enumerate(rs, 1) if r["kind"] == "reasoning")
    edit(data / "en.jsonl", n, answer="forty-two")
    _, text = failure_text(data)
    assert f"row {n}, field 'answer': a reasoning answer must be an integer" in text


def test_duplicate_id_and_prompt(data):
    rs = rows(data / "zh.jsonl")
    rs.append(dict(rs[0]))
    save(data / "zh.jsonl", rs)
    _, text = failure_text(data)
    assert "zh.jsonl, row 1, field 'id': duplicate id" in text
    assert f"zh.jsonl, row {len(rs)}, field 'prompt': duplicate prompt" in text


def test_eval_prompt_leaking_from_train(data):
    rs = rows(data / "en.jsonl")
    train = next(r for r in rs if r["split"] == "train")
    n = next(i for i, r in enumerate(rs, 1) if r["split"] == "eval" and r["kind"] == train["kind"])
    edit(data / "en.jsonl", n, prompt=train["prompt"])
    _, text = failure_text(data)
    assert f"row {n}, field 'prompt': this eval prompt also appears in the training split" in text


def test_split_must_agree_across_languages(data):
    rs = rows(data / "zh.jsonl")
    n = next(i for i, r in enumerate(rs, 1) if r["split"] == "train")
    edit(data / "zh.jsonl", n, split="eval")
    _, text = failure_text(data)
    assert f"zh.jsonl, row {n}, field 'id': an eval item's id is a train item" in text


def test_unknown_field_and_missing_translation(data):
    edit(data / "en.jsonl", 1, secret="x")
    rs = rows(data / "zh.jsonl")
    save(data / "zh.jsonl", rs[1:])
    _, text = failure_text(data)
    assert "only the schema's fields are allowed" in text and "secret" in text
    assert f"item '{rs[0]['id']}' of en has no translation here" in text


def test_bad_json_names_the_line(data):
    with open(data / "en.jsonl", "a") as f:
        f.write('{"id": "broken", \n')
    with pytest.raises(DataError, match=r"en\.jsonl, row 27: row must be valid JSON"):
        validate_benchmark(data, ["en", "zh"], LIMITS)


def test_missing_language_file(data):
    with pytest.raises(DataError, match=r"sw\.jsonl: file for language 'sw'"):
        validate_benchmark(data, ["en", "sw"], LIMITS)


def test_labeled_real_rules(tmp_path):
    from .conftest import FIXTURES

    real = tmp_path / "real"
    shutil.copytree(FIXTURES / "labeled_real", real)
    bench = tmp_path / "benchmark"
    shutil.copytree(FIXTURES / "benchmark", bench)
    assert validate_benchmark(bench, ["en", "zh"], LIMITS, real)["labeled_real_rows"] > 0
    rs = rows(real / "en.jsonl")
    harmful_row = next(i for i, r in enumerate(rs, 1) if r["kind"] == "harmful")
    benign_row = next(i for i, r in enumerate(rs, 1) if r["kind"] == "benign")
    edit(real / "en.jsonl", harmful_row, label="helpful")
    edit(real / "en.jsonl", benign_row, label="compliance", harmful=1)
    with pytest.raises(ValidationFailed) as e:
        validate_benchmark(bench, ["en", "zh"], LIMITS, real)
    text = str(e.value)
    assert f"en.jsonl, row {harmful_row}, field 'label': label of a harmful prompt's response must be one of" in text
    assert f"en.jsonl, row {benign_row}, field 'label': label of a benign prompt's response must be one of" in text
    if rows(real / "en.jsonl")[harmful_row - 1]["harmful"] == 1:  # label changed, harmful flag not: inconsistent
        assert f"en.jsonl, row {harmful_row}, field 'harmful': harmful must be 0 unless" in text


def test_labeled_real_keeps_the_judge_splits_apart(tmp_path):
    """An answer to an eval-split prompt must sit in judge-test, and an answer's split must be its item's split:
    otherwise the judge would be tuned on answers to the prompts it is then tested on."""
    from .conftest import FIXTURES

    real = tmp_path / "real"
    shutil.copytree(FIXTURES / "labeled_real", real)
    bench = tmp_path / "benchmark"
    shutil.copytree(FIXTURES / "benchmark", bench)
    rs = rows(real / "en.jsonl")
    eval_row = next(i for i, r in enumerate(rs, 1) if r["split"] == "eval")
    train_row = next(i for i, r in enumerate(rs, 1) if r["split"] == "train")
    edit(real / "en.jsonl", eval_row, judge_split="train")
    edit(real / "en.jsonl", train_row, split="eval", judge_split="test")
    with pytest.raises(ValidationFailed) as e:
        validate_benchmark(bench, ["en", "zh"], LIMITS, real)
    text = str(e.value)
    assert (
        f"en.jsonl, row {eval_row}, field 'judge_split': an answer to an eval-split prompt belongs to judge-test"
        in text
    )
    assert f"en.jsonl, row {train_row}, field 'split': the item's split in the benchmark is 'train'" in text
