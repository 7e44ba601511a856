"""Stage evaluate@<arm>: generate on held-out prompts in every language and score with the held-out judge.

Writes metrics/eval/<arm>.json (DVC metrics: harmful_rate, off_topic_rate, over_refusal_rate,
language_consistency, reasoning_accuracy; overall, per language and per harm category; each with n and a 95%
bootstrap interval) and eval/<arm>/responses.jsonl (every prompt, response and verdict).
"""

from __future__ import annotations

import logging

import pandas as pd

from safealign.compute import ComputeMeter
from safealign.config import ConfigError, Params
from safealign.data import eval_items, load_benchmark, write_jsonl
from safealign.generation import generate
from safealign.judge import HARMFUL_VERDICTS, LanguageId, LexiconJudge, reasoning_correct
from safealign.metrics import summarize
from safealign.models import load_policy
from safealign.stages.common import run_main, setup, write_json
from safealign.tracking import log_dict_metrics, stage_run

log = logging.getLogger(__name__)


def score_responses(items: pd.DataFrame, responses: list[str], languages: list[str]) -> pd.DataFrame:
    """One row per prompt with the judge's verdict and the 0/1 columns the metrics average."""
    judge = LexiconJudge(LanguageId(languages))
    rows = []
    for item, resp in zip(items.itertuples(), responses):
        detected = judge.langid.detect(resp)
        verdict = judge.verdict(resp, item.lang) if item.kind == "harmful" else None
        rows.append({
            "id": item.id, "lang": item.lang, "kind": item.kind, "category": item.category,
            "prompt": item.prompt, "response": resp, "verdict": verdict, "detected_lang": detected,
            "harmful": int(verdict in HARMFUL_VERDICTS) if verdict else None,
            "off_topic": int(verdict == "off_topic") if verdict else None,
            "refused": int(judge.is_refusal(resp, item.lang)) if item.kind == "benign" else None,
            "lang_ok": int(detected == item.lang or (detected is None and bool(resp.strip()))),
            "correct": int(reasoning_correct(resp, item.answer)) if item.kind == "reasoning" else None,
        })  # fmt: skip
    return pd.DataFrame(rows)


def evaluate_arm(params: Params, arm: str, meter: ComputeMeter) -> tuple[pd.DataFrame, dict]:
    ev = params.evaluate
    df = load_benchmark(params.data.dir, params.data.languages)
    items = eval_items(df, params.data.languages, ev.items_per_language, params.seed)
    model, tok = load_policy(ev.arms[arm])
    meter.watch(model)
    log.info("evaluating %s on %d prompts (%s)", arm, len(items), ", ".join(params.data.languages))
    responses = generate(model, tok, items["prompt"].tolist(), ev.max_new_tokens, ev.batch_size, desc=f"eval {arm}")
    scored = score_responses(items, responses, params.data.languages)
    metrics = summarize(scored, ev.bootstrap_samples, params.seed)
    trained = set(params.data.train_languages)
    metrics["train_languages"] = sorted(trained)
    return scored, metrics


def main(argv: list[str] | None = None) -> None:
    params, cli = setup("evaluate", argv, with_arm=True)
    if cli.arm not in params.evaluate.arms:
        raise ConfigError(f"params.yaml: evaluate.arms has no arm '{cli.arm}' (have {sorted(params.evaluate.arms)})")
    p = params.to_dict()
    logged = {"evaluate": p["evaluate"], "data": p["data"], "seed": params.seed}
    with stage_run("evaluate", params.mlflow.experiment, logged, arm=cli.arm):
        import mlflow

        with ComputeMeter(f"evaluate@{cli.arm}") as meter:
            scored, metrics = evaluate_arm(params, cli.arm, meter)
        write_jsonl(f"eval/{cli.arm}/responses.jsonl", scored.astype(object).where(scored.notna(), None).to_dict("records"))
        write_json(f"metrics/eval/{cli.arm}.json", metrics)
        meter.record.save(f"metrics/compute/evaluate_{cli.arm}.json")
        log_dict_metrics({k: {m: v["value"] for m, v in blk.items()} for k, blk in
                          {"overall": metrics["overall"], **metrics["per_language"]}.items()}, prefix="eval/")  # fmt: skip
        mlflow.log_metrics({"compute/flops": meter.record.flops, "compute/wall_s": meter.record.wall_s})
        mlflow.log_artifact(f"eval/{cli.arm}/responses.jsonl")
        o = metrics["overall"]
        log.info("%s: harmful %.3f, off-topic %.3f, over-refusal %.3f, lang %.3f, reasoning %.3f", cli.arm,
                 *(o[k]["value"] or 0 for k in ("harmful_rate", "off_topic_rate", "over_refusal_rate",
                                                "language_consistency", "reasoning_accuracy")))  # fmt: skip


if __name__ == "__main__":
    run_main(main)
