"""Stage detect: choose the judge on annotated real answers, and say in which languages it can be trusted.

1. Candidates (safealign.detection): the lexicon (baseline, nothing to fit), the character n-gram classifier and
   the multilingual-embedding classifier, each fit on judge-train (the annotated answers to train-split items),
   with and without the synthetic labeled responses of the train split, at a few regularization strengths; a
   guard model when `detect.guard_model` is set. The reward model is scored too, as a reference: it never judges.
2. judge-dev chooses each family's settings (and the embedding judge's harmful threshold), then the judge among
   the families (safealign.judging.selection_score). The chosen settings are refit on judge-train + judge-dev.
3. judge-test (answers to eval-split prompts) scores every candidate per language with item-clustered intervals.
   Nothing is chosen on it. The chosen judge's per-language result against `detect.targets` decides which
   languages' rates are measurements (`validated_languages`); evaluate reports the others as not measured.
4. Inter-annotator agreement (Cohen's kappa per language) of the doubly annotated answers.

Outputs: metrics/detection.json (DVC metrics: the summary), metrics/judge.json (every table: per candidate, split,
language; confusion matrices; per-source rates; agreement), metrics/plots/detection.csv, models/detector (the
fitted judges and judge.json: which one, with which settings).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safealign import judging
from safealign.compute import ComputeMeter
from safealign.config import Params
from safealign.data import load_benchmark, load_labeled_real
from safealign.detection import (
    ClassifierDetector,
    EmbeddingDetector,
    GuardDetector,
    binary_scores,
    labeled_responses,
    lexicon_detector,
    reward_threshold,
    synthetic_labels,
)
from safealign.models import load_reward_model, score
from safealign.stages.common import atomic_dir, run_main, setup, write_json
from safealign.tracking import log_dict_metrics, record_compute, stage_run

OUT_DIR, REWARD = "models/detector", "models/reward"
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
log = logging.getLogger(__name__)


def _fit(family: str, cfg: dict, train: pd.DataFrame, seed: int):
    det = (ClassifierDetector if family == "classifier" else EmbeddingDetector)(c=cfg["c"], seed=seed)
    return det.fit(train)


def choose_settings(
    family: str,
    grid: list[dict],
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    dev: pd.DataFrame,
    targets: dict,
    params: Params,
) -> tuple[dict, dict, Any]:
    """The family's best settings on judge-dev: (settings, dev report, detector fit on judge-train)."""
    best = None
    for cfg in grid:
        det = _fit(family, cfg, pd.concat([train, synthetic]) if cfg["synthetic"] else train, params.seed)
        for threshold in THRESHOLDS if family == "embedding" else (None,):
            if threshold is not None:
                det.threshold = threshold
            rep = judging.report(dev, det.verdicts(dev), params.evaluate.bootstrap_samples, params.seed)
            key = judging.selection_score(rep, targets)
            if best is None or key > best[0]:
                best = (key, cfg | ({"threshold": threshold} if threshold is not None else {}), rep, det)
    log.info("%s: best on judge-dev %s (languages meeting targets, F1, accuracy = %s)", family, best[1], best[0])
    return best[1], best[2], best[3]


def run_detection(params: Params, out_dir: Path, meter: ComputeMeter) -> tuple[dict, dict]:
    d, samples, seed = params.detect, params.evaluate.bootstrap_samples, params.seed
    langs = params.data.languages
    targets = dict(d.targets)
    real = load_labeled_real(params.data.labeled_real_dir, langs).reset_index(drop=True)
    if real.empty:
        raise FileNotFoundError(
            f"{params.data.labeled_real_dir}: no annotated real answers for {langs}; the judge "
            "cannot be chosen or validated without them (data card: data/labeled_real/README.md)"
        )
    parts = {s: real[real.judge_split == s].reset_index(drop=True) for s in ("train", "dev", "test")}
    synthetic_all = synthetic_labels(labeled_responses(load_benchmark(params.data.dir, langs), langs))
    synthetic = synthetic_all[synthetic_all.split == "train"]
    log.info(
        "annotated real answers: %s; synthetic training rows: %d", {k: len(v) for k, v in parts.items()}, len(synthetic)
    )

    # 1-2. candidates, settings chosen on judge-dev, refit on train + dev
    fitted, dev_reports, settings = {"lexicon": lexicon_detector(langs)}, {}, {"lexicon": {}}
    dev_reports["lexicon"] = judging.report(parts["dev"], fitted["lexicon"].verdicts(parts["dev"]), samples, seed)
    train_dev = pd.concat([parts["train"], parts["dev"]])
    for family in ("classifier", "embedding"):
        grid = [{"c": c, "synthetic": syn} for c in d.c_grid[family] for syn in (False, True)]
        cfg, dev_reports[family], _ = choose_settings(
            family, grid, parts["train"], synthetic, parts["dev"], targets, params
        )
        det = _fit(family, cfg, pd.concat([train_dev, synthetic]) if cfg["synthetic"] else train_dev, seed)
        if "threshold" in cfg:
            det.threshold = cfg["threshold"]
        det.save(out_dir / f"{family}.skops")
        fitted[family], settings[family] = det, cfg
    if d.guard_model:
        fitted["guard"] = GuardDetector(
            d.guard_model, trust_remote_code=params.model.trust_remote_code, max_new_tokens=d.guard_max_new_tokens
        )
        meter.watch(fitted["guard"].model)
        settings["guard"] = {"model": d.guard_model}
        dev_reports["guard"] = judging.report(parts["dev"], fitted["guard"].verdicts(parts["dev"]), samples, seed)
    ranking = {name: judging.selection_score(rep, targets) for name, rep in dev_reports.items()}
    chosen = max((n for n in ranking if n in judging.ELIGIBLE), key=ranking.get)

    # 3. judge-test: every candidate, per language; the chosen one decides where rates are measurements
    test = parts["test"]
    test_reports = {name: judging.report(test, det.verdicts(test), samples, seed) for name, det in fitted.items()}
    rm, tok = load_reward_model(REWARD)
    meter.watch(rm)
    chat = lambda f: [[{"role": "user", "content": p}] for p in f["prompt"]]  # noqa: E731
    harm_train = train_dev[train_dev.kind == "harmful"]
    threshold = reward_threshold(
        np.array(score(rm, tok, chat(harm_train), harm_train["response"].tolist())), harm_train["harmful"].to_numpy()
    )
    rm_scores = np.array(score(rm, tok, chat(test), test["response"].tolist()))
    rm_verdicts = [
        "compliance" if (k == "harmful" and s < threshold) else ("refusal" if k == "harmful" else "helpful")
        for k, s in zip(test["kind"], rm_scores)
    ]
    test_reports["reward_model"] = judging.report(test, rm_verdicts, samples, seed)
    languages = judging.validated(test_reports[chosen], targets)
    agreement = judging.agreement(real)

    # the synthetic set, for reference only (clean texts: optimistic)
    syn_eval = synthetic_all[synthetic_all.split == "eval"]
    synthetic_table = {
        name: binary_scores(syn_eval["harmful"].to_numpy(), fitted[name].predict(syn_eval))
        for name in ("lexicon", "classifier")
    }
    detail = {
        "targets": targets,
        "chosen": chosen,
        "settings": settings,
        "selection_on_dev": ranking,
        "dev": dev_reports,
        "test": test_reports,
        "languages": languages,
        "agreement": agreement,
        "synthetic_eval": synthetic_table,
        "reward_threshold": float(threshold),
        "rows": {k: len(v) for k, v in parts.items()} | {"synthetic_train": len(synthetic)},
    }
    (out_dir / "judge.json").write_text(json.dumps({"judge": chosen, "settings": settings[chosen]}, indent=2) + "\n")
    return summary(detail), detail


def summary(detail: dict) -> dict[str, Any]:
    """The small DVC metrics file: the judge, where it is validated, and each candidate's overall test scores."""
    chosen = detail["chosen"]
    overall = lambda rep: {k: rep["overall"].get(k, {}).get("value") for k in ("accuracy", "f1", "fpr")}  # noqa: E731
    return {
        "best_judge": chosen,
        "settings": detail["settings"][chosen],
        "validated_languages": sorted(k for k, v in detail["languages"].items() if v["validated"]),
        "validated_by_judge": {
            name: sorted(k for k, v in judging.validated(rep, detail["targets"]).items() if v["validated"])
            for name, rep in detail["test"].items()
            if name in judging.ELIGIBLE
        },
        "not_validated": {k: "; ".join(v["reasons"]) for k, v in detail["languages"].items() if not v["validated"]},
        "judge_test": {name: overall(rep) for name, rep in detail["test"].items()},
        "kappa": detail["agreement"]["overall"]["kappa"],
        "reward_threshold": detail["reward_threshold"],
        "rows": detail["rows"],
    }


def plot_rows(detail: dict) -> list[dict]:
    rows = []
    for det, rep in detail["test"].items():
        for lang, s in rep["per_language"].items():
            rows.append(
                {
                    "detector": det,
                    "lang": lang,
                    **{
                        k: round(s.get(k, {}).get("value") or 0.0, 4)
                        for k in ("accuracy", "f1", "precision", "recall", "fpr")
                    },
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    params, _ = setup("detect", argv)
    p = params.to_dict()
    with stage_run("detect", params.mlflow.experiment, {"detect": p["detect"], "data": p["data"], "seed": params.seed}):
        import mlflow

        with ComputeMeter("detect") as meter, atomic_dir(OUT_DIR) as tmp:
            result, detail = run_detection(params, tmp, meter)
        record_compute(meter.record, "metrics/compute/detect.json", params.cost)
        write_json("metrics/detection.json", result)
        chosen = result["judge_test"][result["best_judge"]]
        write_json(
            "metrics/summary/detect.json",
            {
                "judge": result["best_judge"],
                "validated_languages": len(result["validated_languages"]),
                "accuracy": chosen["accuracy"],
                "f1": chosen["f1"],
                "kappa": result["kappa"],
            },
        )
        write_json("metrics/judge.json", detail)
        Path("metrics/plots").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(plot_rows(detail)).to_csv("metrics/plots/detection.csv", index=False)
        log_dict_metrics({"judge_test": result["judge_test"], "kappa": result["kappa"] or 0.0}, prefix="detect/")
        mlflow.set_tags(
            {"best_judge": result["best_judge"], "validated_languages": ",".join(result["validated_languages"])}
        )
        mlflow.log_artifact("metrics/judge.json")
        for name, s in result["judge_test"].items():
            log.info("judge-test %-12s accuracy %s  F1 %s  FPR %s", name, *(s[k] for k in ("accuracy", "f1", "fpr")))
        log.info(
            "judge: %s; validated in %s; not in %s",
            result["best_judge"],
            result["validated_languages"],
            sorted(result["not_validated"]),
        )


if __name__ == "__main__":
    run_main(main)
