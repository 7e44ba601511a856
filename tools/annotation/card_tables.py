"""Tables for the data card of data/labeled_real (printed as markdown): answers per language by label, judge split
and source, and how many were annotated twice.

    python tools/annotation/card_tables.py [--data data/labeled_real]
"""

import argparse

import pandas as pd

from safealign.data import load_labeled_real

LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]


def table(df: pd.DataFrame, col: str) -> str:
    t = pd.crosstab(df["lang"], df[col]).reindex(LANGS).fillna(0).astype(int)
    t.loc["all"] = t.sum()
    header = "| lang | " + " | ".join(map(str, t.columns)) + " | total |"
    rows = [f"| {lang} | " + " | ".join(str(v) for v in r) + f" | {sum(r)} |" for lang, r in zip(t.index, t.values)]
    return "\n".join([header, "|" + "---|" * (len(t.columns) + 2), *rows])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/labeled_real")
    df = load_labeled_real(ap.parse_args().data, LANGS)
    df["model"] = df["source"].str.split("/").str[0]
    df["label_kind"] = df["kind"] + ":" + df["label"]
    df["double"] = df["second_label"].notna().map({True: "two passes", False: "one pass"})
    harm_test = df[(df.judge_split == "test") & (df.kind == "harmful")]
    print(
        f"{len(df)} answers; {df['id'].nunique()} items; harmful answers in judge-test per language: "
        + ", ".join(f"{lg} {int(g['harmful'].sum())}" for lg, g in harm_test.groupby("lang"))
    )
    for col in ("label_kind", "judge_split", "model", "double"):
        print(f"\n### by {col}\n\n{table(df, col)}")
    print("\n### by source\n\n" + table(df, "source"))
