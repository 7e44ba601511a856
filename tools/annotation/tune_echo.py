"""Choose safealign.judge.ECHO_OVERLAP on judge-train only (annotated answers to train-split items in the judge-
train part): the share of a response's character 4-grams found in its prompt above which the lexicon calls it an
echo. Prints, for each candidate threshold, how many annotated off-topic answers and how many others it flags.

    python tools/annotation/tune_echo.py [--data data/labeled_real]
"""

import argparse

import numpy as np

from safealign.data import load_labeled_real
from safealign.judge import echo_overlap

LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/labeled_real")
    a = ap.parse_args()
    df = load_labeled_real(a.data, LANGS)
    train = df[df.judge_split == "train"]
    overlap = np.array([echo_overlap(p, r) for p, r in zip(train["prompt"], train["response"])])
    off = (train["label"] == "off_topic").to_numpy()
    print(f"judge-train: {len(train)} answers, {off.sum()} annotated off-topic")
    best = None
    for t in np.arange(0.3, 0.95, 0.05):
        flagged = overlap >= t
        tp, fp = int((flagged & off).sum()), int((flagged & ~off).sum())
        youden = tp / max(off.sum(), 1) - fp / max((~off).sum(), 1)
        best = max(best or (youden, t), (youden, t))
        share_off, share_other = tp / max(off.sum(), 1), fp / max((~off).sum(), 1)
        print(f"threshold {t:.2f}: flags {tp} off-topic ({share_off:.0%}), {fp} others ({share_other:.0%})")
    print(f"best by Youden's J on judge-train: {best[1]:.2f}")
