"""Stage detect: the detection benchmark. Which harmfulness detector can we trust, in which language?

Builds labeled responses from the benchmark (safealign.detection), trains the classifier on the train split of
the training languages, calibrates the reward model's threshold there, and scores every detector on the eval
split of every language: precision, recall, F1, false-positive rate, F1 gap to English. The best eligible
detector (never the reward model RL optimizes) becomes the judge when `evaluate.judge` is `auto`.

Outputs: metrics/detection.json (DVC metrics), metrics/plots/detection.csv (DVC plots), models/detector.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from safealign.compute import ComputeMeter
from safealign.config import Params
from safealign.data import load_benchmark, load_labeled_real
from safealign.detection import (
    ClassifierDetector,
    GuardDetector,
    choose_judge,
    labeled_responses,
    lexicon_detector,
    reward_threshold,
    score_table,
    verdict_accuracy,
)
from safealign.stages.common import atomic_dir, run_main, setup, write_json
from safealign.tracking import log_dict_metrics, stage_run

OUT_DIR, REWARD = "models/detector", "models/reward"
log = logging.getLogger(__name__)


def stratified(frame: pd.DataFrame, per_language: int, seed: int) -> pd.DataFrame:
    """Up to `per_language` rows per language, spread evenly over response types (for costly detectors)."""
    parts = []
    for _, g in frame.groupby("lang", sort=True):
        per_type = max(1, per_language // g["type"].nunique())
        parts.extend(t.sample(min(len(t), per_type), random_state=seed) for _, t in g.groupby("type", sort=True))
    return pd.concat(parts).sort_index()


def run_detection(params: Params, out_dir: Path, meter: ComputeMeter) -> dict:
    d = params.detect
    langs, train_langs = params.data.languages, params.data.train_languages
    labeled = labeled_responses(load_benchmark(params.data.dir, langs), langs)
    train = labeled[(labeled.split == "train") & labeled.lang.isin(train_langs)]
    test = labeled[labeled.split == "eval"].reset_index(drop=True)
    log.info("detection benchmark: %d labeled responses (%d train, %d eval)", len(labeled), len(train), len(test))

    # 1. cheap detectors on every eval row
    predictions = {"lexicon": lexicon_detector(langs).predict(test)}
    classifier = ClassifierDetector(c=d.classifier_c, seed=params.seed).fit(train)
    classifier.save(out_dir / "classifier.skops")
    predictions["classifier"] = classifier.predict(test)
    table = score_table(test, predictions)

    # 2. model-based detectors on a stratified subsample (each row is a forward pass or a generation)
    sub = stratified(test, d.model_rows_per_language, params.seed).reset_index(drop=True)
    sub_train = stratified(train, d.model_rows_per_language, params.seed).reset_index(drop=True)
    from safealign.stages.reward import load_reward_model, score

    rm, tok = load_reward_model(REWARD)
    meter.watch(rm)
    chat = lambda f: [[{"role": "user", "content": p}] for p in f["prompt"]]  # noqa: E731
    threshold = reward_threshold(np.array(score(rm, tok, chat(sub_train), sub_train["response"].tolist())),
                                 sub_train["harmful"].to_numpy())  # fmt: skip
    rm_scores = np.array(score(rm, tok, chat(sub), sub["response"].tolist()))
    model_preds = {"reward_model": (rm_scores < threshold).astype(int)}
    if d.guard_model:
        guard = GuardDetector(d.guard_model, trust_remote_code=params.model.trust_remote_code,
                              max_new_tokens=d.guard_max_new_tokens)  # fmt: skip
        meter.watch(guard.model)
        model_preds["guard"] = guard.predict(sub)
    # the cheap detectors on the same subsample too, so every detector can be compared on equal rows
    sub_preds = {k: v[sub_index(test, sub)] for k, v in predictions.items()} | model_preds
    table_sub = score_table(sub, sub_preds)
    for name in model_preds:
        table[name] = table_sub[name]

    # 3. annotated real model responses: the check that matters for judging real outputs (synthetic texts are
    #    cleaner than what a 135M model writes in Swahili)
    real = load_labeled_real(params.data.labeled_real_dir, langs).reset_index(drop=True)
    real_table = None
    if len(real):
        lexicon = lexicon_detector(langs)
        verdicts = {"lexicon": lexicon.verdicts(real), "classifier": classifier.verdicts(real)}
        real_preds = {k: np.array([x in ("compliance", "partial") for x in v], dtype=int) for k, v in verdicts.items()}
        real_preds["reward_model"] = (np.array(score(rm, tok, chat(real), real["response"].tolist())) < threshold).astype(int)
        if d.guard_model:
            verdicts["guard"] = guard.verdicts(real)
            real_preds["guard"] = np.array([x == "compliance" for x in verdicts["guard"]], dtype=int)
        real_table = score_table(real, real_preds)
        for name, v in verdicts.items():
            real_table[name]["verdict_accuracy"] = verdict_accuracy(real, v)
    best = choose_judge(table, real_table)
    return {
        "detectors": table,
        "real_responses": real_table,
        "same_rows_subsample": table_sub,
        "best_judge": best,
        "judge_chosen_on": "annotated real responses" if real_table else "synthetic labeled responses",
        "reward_threshold": float(threshold),
        "rows": {"labeled": len(labeled), "train": len(train), "eval": len(test), "model_subsample": len(sub),
                 "real": len(real)},
    }  # fmt: skip


def sub_index(full: pd.DataFrame, sub: pd.DataFrame) -> np.ndarray:
    """Positions in `full` of the rows of `sub` (matched on id, lang, type)."""
    key = ["id", "lang", "type"]
    pos = pd.Series(np.arange(len(full)), index=pd.MultiIndex.from_frame(full[key]))
    return pos.loc[pd.MultiIndex.from_frame(sub[key])].to_numpy()


def plot_rows(result: dict) -> list[dict]:
    rows = []
    for where, table in (("synthetic", result["detectors"]), ("real", result["real_responses"] or {})):
        for det, t in table.items():
            for lang, s in t["per_language"].items():
                rows.append({"set": where, "detector": det, "lang": lang,
                             **{k: round(s[k], 4) for k in ("f1", "precision", "recall", "fpr")}})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    params, _ = setup("detect", argv)
    p = params.to_dict()
    with stage_run("detect", params.mlflow.experiment, {"detect": p["detect"], "data": p["data"], "seed": params.seed}):
        import mlflow

        with ComputeMeter("detect") as meter, atomic_dir(OUT_DIR) as tmp:
            result = run_detection(params, tmp, meter)
        meter.record.save("metrics/compute/detect.json")
        write_json("metrics/detection.json", result)
        Path("metrics/plots").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(plot_rows(result)).to_csv("metrics/plots/detection.csv", index=False)
        log_dict_metrics({k: {"macro_f1": v["macro_f1"], **{m: v["overall"][m] for m in ("f1", "fpr")},
                              "f1_gap_to_en": v["f1_gap_to_en"]} for k, v in result["detectors"].items()},
                         prefix="detect/")  # fmt: skip
        if result["real_responses"]:
            log_dict_metrics({k: {"f1": v["overall"]["f1"], "fpr": v["overall"]["fpr"],
                                  "verdict_accuracy": v.get("verdict_accuracy", {}).get("overall") or 0.0}
                              for k, v in result["real_responses"].items()}, prefix="detect_real/")  # fmt: skip
        mlflow.set_tag("best_judge", result["best_judge"])
        mlflow.log_artifact("metrics/plots/detection.csv")
        for name, t in result["detectors"].items():
            log.info("synthetic %-12s macro F1 %.3f  overall F1 %.3f  FPR %.3f", name, t["macro_f1"], t["overall"]["f1"], t["overall"]["fpr"])
        for name, t in (result["real_responses"] or {}).items():
            log.info("real      %-12s F1 %.3f  FPR %.3f  verdict accuracy %s", name, t["overall"]["f1"], t["overall"]["fpr"],
                     t.get("verdict_accuracy", {}).get("overall"))  # fmt: skip
        log.info("best judge: %s", result["best_judge"])


if __name__ == "__main__":
    run_main(main)

