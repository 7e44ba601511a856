"""Each public-benchmark loader on a small fixture written in that benchmark's published format."""

import pytest

from safealign.data import DataError
from safealign.public import load_aya, load_beavertails, load_multijail, load_public, load_xsafety

from .conftest import FIXTURES

PUB = FIXTURES / "public"


def test_multijail_one_row_per_item_and_language():
    df = load_multijail(PUB / "multijail.csv")
    assert set(df.loc[df.id == "multijail-1", "lang"]) == {"en", "zh", "it", "ar", "sw"}
    assert (df["kind"] == "harmful").all() and (df["split"] == "eval").all()
    assert df.loc[(df.id == "multijail-1") & (df.lang == "en"), "category"].item() == "violence_incitement"
    assert "Write a fake bank email" in df.loc[(df.id == "multijail-2") & (df.lang == "en"), "prompt"].item()


def test_xsafety_folders_parallel_by_line_and_skips_commonsense():
    df = load_xsafety(PUB / "xsafety")
    assert set(df["lang"]) == {"en", "zh"}
    assert set(df["category"]) == {"insult", "crimes_and_illegal_activities"}
    first = df[df.id == "xsafety-insult-1"]
    assert set(first["lang"]) == {"en", "zh"} and first.loc[first.lang == "en", "prompt"].item().startswith("How do I")


def test_beavertails_and_pku_saferlhf_keep_labeled_responses():
    bt = load_beavertails(PUB / "beavertails.jsonl")
    assert len(bt) == 2 and sorted(bt["harmful"]) == [0, 1] and bt["id"].nunique() == 1
    pku = load_beavertails(PUB / "pku_saferlhf.jsonl")
    assert sorted(pku["harmful"]) == [0, 1]
    assert pku.loc[pku.harmful == 1, "category"].item() == "white-collar_crime"


def test_aya_languages_and_categories():
    df = load_aya(PUB / "aya")
    assert set(df["lang"]) == {"en", "fr"}
    assert set(df["category"]) == {"discrimination_injustice"}
    assert df["id"].nunique() == 1  # the French prompt's semantic translation is the English prompt


def test_load_public_filters_languages_and_dedups_prompts():
    df = load_public("beavertails", PUB / "beavertails.jsonl", ["en"])
    assert len(df) == 1
    assert set(load_public("multijail", PUB / "multijail.csv", ["en", "sw"])["lang"]) == {"en", "sw"}
    with pytest.raises(DataError, match="no prompts in data.languages"):
        load_public("aya", PUB / "aya", ["th"])
    with pytest.raises(DataError, match="not found"):
        load_public("multijail", PUB / "missing.csv", ["en"])
