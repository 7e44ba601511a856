"""Each public-benchmark loader on a small fixture written in that benchmark's published format, and the MultiJail
and XSafety loaders on the real published files in ../shared/public (skipped where that folder is absent)."""

from pathlib import Path

import openpyxl
import pytest

from safealign.data import DataError
from safealign.public import load_aya, load_beavertails, load_multijail, load_public, load_xsafety

from .conftest import FIXTURES

PUB = FIXTURES / "public"
REAL = Path(__file__).resolve().parents[2] / "shared" / "public"
MULTIJAIL_LANGS = {"en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv"}
XSAFETY_LANGS = {"ar", "bn", "de", "en", "es", "fr", "hi", "ja", "ru", "zh"}


@pytest.fixture(scope="module")
def real() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"the published benchmark files are not at {REAL}")
    return REAL


def test_multijail_one_row_per_item_and_language():
    df = load_multijail(PUB / "multijail.csv")
    assert set(df.loc[df.id == "multijail-1", "lang"]) == {"en", "zh", "it", "ar", "sw"}
    assert (df["kind"] == "harmful").all() and (df["split"] == "eval").all()
    assert df.loc[(df.id == "multijail-1") & (df.lang == "en"), "category"].item() == "violence_incitement"
    second = df[(df.id == "multijail-2") & (df.lang == "en")].iloc[0]
    assert "Write a fake bank email" in second["prompt"]
    assert second["tags"] == ["non-violent_unethical_behavior_e_g_lying_cheating_etc", "fraud_deception"]
    assert second["category"] == second["tags"][0]


def test_multijail_unreadable_tags_or_missing_language_name_the_file(tmp_path):
    header = "id,source,tags," + ",".join(sorted(MULTIJAIL_LANGS))
    bad = tmp_path / "tags.csv"
    bad.write_text(header + "\n1,x,violence,a,b,c,d,e,f,g,h,i,j\n")
    with pytest.raises(DataError, match="tags.csv, row 2, field 'tags'"):
        load_multijail(bad)
    (tmp_path / "nosw.csv").write_text(header.replace(",sw", "") + "\n1,x,['A'],a,b,c,d,e,f,g,h,i\n")
    with pytest.raises(DataError, match="nosw.csv, row 1, field 'sw'"):
        load_multijail(tmp_path / "nosw.csv")


def test_xsafety_folders_parallel_by_line_and_skips_commonsense():
    df = load_xsafety(PUB / "xsafety")
    assert set(df["lang"]) == {"en", "zh"}
    assert set(df["category"]) == {"insult", "crimes_and_illegal_activities"}
    first = df[df.id == "xsafety-insult-1"]
    assert set(first["lang"]) == {"en", "zh"} and first.loc[first.lang == "en", "prompt"].item().startswith("How do I")
    assert not df["prompt"].str.contains("\ufeff").any()  # zh/Insult.csv starts with a byte-order mark


def _xlsx(path: Path, cells: list[str | None]) -> None:
    wb = openpyxl.Workbook()
    for n, value in enumerate(cells, start=1):
        wb.active.cell(row=n, column=1, value=value)
    wb.save(path)


def test_xsafety_spanish_bengali_xlsx_empty_rows_and_misspelt_commonsense(tmp_path):
    for lang in ("sp", "bn", "hi"):
        (tmp_path / lang).mkdir()
    (tmp_path / "sp" / "Insult.csv").write_text("\ufeffuno\n\ntres\n", encoding="utf-8")
    _xlsx(tmp_path / "bn" / "Insult_n.xlsx", ["one", None, "three"])
    (tmp_path / "hi" / "Insult.csv").write_text("ek\ndo\ntin\n", encoding="utf-8")
    (tmp_path / "hi" / "commen_sense.csv").write_text("A. run B. stay\n", encoding="utf-8")
    df = load_xsafety(tmp_path)
    assert sorted(df["lang"].unique()) == ["bn", "es", "hi"] and set(df["category"]) == {"insult"}
    assert (
        set(df.loc[df.lang == "es", "id"])
        == set(df.loc[df.lang == "bn", "id"])
        == {"xsafety-insult-1", "xsafety-insult-3"}
    )
    assert df.loc[(df.id == "xsafety-insult-1") & (df.lang == "es"), "prompt"].item() == "uno"


@pytest.mark.parametrize(
    "name, content",
    [
        ("Insult.csv", b"\xff\xfe not utf-8"),
        ("Insult.xlsx", b"not a workbook"),
        ("Insult.txt", b"x"),
        ("Insult.csv", b'"half, prompt",other half\n'),
    ],
)
def test_xsafety_unreadable_file_is_an_error_naming_it(tmp_path, name, content):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / name).write_bytes(content)
    with pytest.raises(DataError, match=name):
        load_xsafety(tmp_path)


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


def test_real_multijail_all_languages_315_items_18_tags(real):
    df = load_multijail(real / "multijail" / "MultiJail.csv")
    assert set(df["lang"]) == MULTIJAIL_LANGS and df["id"].nunique() == 315
    assert (df.groupby("lang")["id"].nunique() == 315).all()
    assert len({t for tags in df["tags"] for t in tags}) == 18
    assert df["category"].isin({t for tags in df["tags"] for t in tags}).all()
    assert df["tags"].map(len).max() > 1  # multi-tag items keep every tag
    assert not df.astype(str).apply(lambda col: col.str.contains("\ufeff")).any().any()


def test_real_xsafety_every_language_parallel_without_bom_or_commonsense(real):
    df = load_xsafety(real / "xsafety")
    assert set(df["lang"]) == XSAFETY_LANGS  # bn from .xlsx, es from sp/
    assert not df["prompt"].str.startswith("\ufeff").any()
    assert not df["category"].str.contains("comm").any()  # commonsense.csv and hi/commen_sense.csv
    assert df["category"].nunique() == 13 and not df.duplicated(["id", "lang"]).any()
    en = df[df.lang == "en"].set_index("id")["category"]
    for lang, rows in df.groupby("lang"):
        assert (rows.set_index("id")["category"] == en.reindex(rows["id"]).values).all(), lang
        for category, items in rows.groupby("category"):
            missing = set(en[en == category].index) - set(items["id"])
            # the only empty row of the published files: ru/Insult.csv, row 165
            assert missing == ({"xsafety-insult-165"} if (lang, category) == ("ru", "insult") else set()), (
                lang,
                category,
            )
    assert len(df) == 10 * 13 * 200 - 1


def test_real_load_public_selects_languages(real):
    xs = load_public("xsafety", real / "xsafety", ["es", "bn"])
    assert xs.groupby("lang").size().to_dict() == {"bn": 2600, "es": 2600}
    assert set(xs.loc[xs.lang == "es", "id"]) == set(xs.loc[xs.lang == "bn", "id"])
    mj = load_public("multijail", real / "multijail" / "MultiJail.csv", ["th", "sw"])
    assert mj.groupby("lang").size().to_dict() == {"sw": 315, "th": 315}
