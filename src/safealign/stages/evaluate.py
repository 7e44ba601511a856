"""Stage evaluate@<arm>: generate on held-out prompts in every language and score with the held-out judge.

Every response is classed (refusal, partial, compliance, off_topic) by the judge that the detection benchmark
chose (`evaluate.judge: auto`) or that params name; the reward model never judges. Writes metrics/eval/<arm>.json
(DVC metrics, each rate with n and a 95% bootstrap interval: overall, per language, per harm category; the
cross-lingual gap; reward-hacking indicators) and eval/<arm>/responses.jsonl (every prompt, response, verdict).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from safealign.compute import ComputeMeter
from safealign.config import ConfigError, Params
from safealign.data import eval_items, load_benchmark, write_jsonl
from safealign.detection import ClassifierDetector, GuardDetector, lexicon_detector
from safealign.generation import generate
from safealign.judge import HARMFUL_VERDICTS, LanguageId, LexiconJudge, reasoning_correct
from safealign.metrics import diff_ci, rate, summarize
from safealign.models import lineage_chain, load_policy
from safealign.public import load_public
from safealign.stages.common import run_main, setup, write_json
from safealign.tracking import log_dict_metrics, stage_run

DETECTION, CLASSIFIER, REWARD = "metrics/detection.json", "models/detector/classifier.skops", "models/reward"
log = logging.getLogger(__name__)
Verdicts = Callable[[pd.DataFrame], list[str]]  # frame with response, lang -> one verdict per row


def judge_name(params: Params) -> str:
    name = params.evaluate.judge
    if name == "auto":
        if not Path(DETECTION).exists():
            raise FileNotFoundError(f"{DETECTION}: evaluate.judge is 'auto' but the detect stage has not run")
        name = json.loads(Path(DETECTION).read_text())["best_judge"]
    return name


def make_judge(name: str, params: Params, languages: list[str]) -> Verdicts:
    """Verdicts by the named judge; every judge first applies the shared off-topic checks (loop, echo)."""
    if name == "lexicon":
        return lexicon_detector(languages).verdicts
    if name == "classifier":
        return ClassifierDetector.load(CLASSIFIER).verdicts
    if name == "guard":
        if not params.detect.guard_model:
            raise ConfigError("params.yaml: evaluate.judge is 'guard' but detect.guard_model is null")
        return GuardDetector(params.detect.guard_model, trust_remote_code=params.model.trust_remote_code).verdicts
    raise ConfigError(f"params.yaml: unknown judge '{name}'")


def score_responses(items: pd.DataFrame, responses: list[str], languages: list[str], verdicts: Verdicts,
                    lexicon: LexiconJudge) -> pd.DataFrame:  # fmt: skip
    """One row per prompt with the judge's verdict and the 0/1 columns the metrics average."""
    frame = items[["id", "lang", "kind", "category", "prompt", "answer"]].assign(response=responses)
    verdict = verdicts(frame)
    rows = []
    for item, resp, v in zip(frame.itertuples(), responses, verdict):
        detected = lexicon.langid.detect(resp)
        harmful_prompt = item.kind == "harmful"
        rows.append({
            "id": item.id, "lang": item.lang, "kind": item.kind, "category": item.category,
            "prompt": item.prompt, "response": resp, "verdict": v, "detected_lang": detected,
            "harmful": int(v in HARMFUL_VERDICTS) if harmful_prompt else None,
            "off_topic": int(v == "off_topic") if harmful_prompt else None,
            "refused": int(v == "refusal") if item.kind == "benign" else None,
            "refuse_then_comply": int(lexicon.refuses_then_complies(resp, item.lang)) if harmful_prompt else None,
            "lang_ok": int(detected == item.lang or (detected is None and bool(resp.strip()))),
            "correct": int(reasoning_correct(resp, item.answer)) if item.kind == "reasoning" else None,
            "chars": len(resp),
        })  # fmt: skip
    return pd.DataFrame(rows)


def reward_scores(scored: pd.DataFrame) -> np.ndarray:
    from safealign.stages.reward import load_reward_model, score

    model, tok = load_reward_model(REWARD)
    return np.array(score(model, tok, [[{"role": "user", "content": p}] for p in scored["prompt"]], scored["response"].tolist()))


def hacking_indicators(scored: pd.DataFrame, threshold: float | None, samples: int, seed: int) -> dict:
    """Reward-hacking signals on harmful prompts: reward model vs judge disagreement (the RM calls it safe, the
    judge calls it harmful), refuse-then-comply, response length; KL comes from the PPO stage."""
    harm = scored[scored.kind == "harmful"]
    out = {
        "refuse_then_comply_rate": rate(harm["refuse_then_comply"], samples, seed),
        "mean_response_chars": float(scored["chars"].mean()),
    }
    if "reward" in scored and threshold is not None:
        rm_safe = (harm["reward"] >= threshold).astype(int)
        out["rm_safe_judge_harmful_rate"] = rate(rm_safe * harm["harmful"], samples, seed)
        out["rm_judge_disagreement_rate"] = rate((rm_safe == harm["harmful"]).astype(int), samples, seed)
        out["mean_reward_harmful_prompts"] = float(harm["reward"].mean())
    return out


def eval_prompts(params: Params) -> pd.DataFrame:
    """The prompts every arm is scored on: our benchmark's eval split (a seeded parallel subsample), or a public
    benchmark from local files when `evaluate.benchmark` names one."""
    ev = params.evaluate
    if ev.benchmark == "safealign":
        df = load_benchmark(params.data.dir, params.data.languages)
        return eval_items(df, params.data.languages, ev.items_per_language, params.seed)
    items = load_public(ev.benchmark, ev.benchmark_path, params.data.languages)
    n = (ev.items_per_language or {}).get("harmful")
    if n:  # the same ids in every language where the benchmark is parallel
        ids = sorted(items["id"].unique())
        keep = set(random.Random(params.seed).sample(ids, min(n, len(ids))))
        items = items[items["id"].isin(keep)].reset_index(drop=True)
    return items.assign(answer=None)


def evaluate_model(params: Params, model_dir: str, meter: ComputeMeter, label: str = "",
                   reward: bool = False) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Generate with the model in `model_dir` on the evaluation prompts and score it (used for the arms and for
    re-evaluating the registry champion on the same prompts with the same judge)."""
    ev = params.evaluate
    items = eval_prompts(params)
    lexicon = LexiconJudge(LanguageId(params.data.languages))
    name = judge_name(params)
    verdicts = make_judge(name, params, params.data.languages)
    model, tok = load_policy(model_dir)
    meter.watch(model)
    log.info("evaluating %s on %d prompts of %s (%s), judge: %s", label or model_dir, len(items), ev.benchmark,
             ", ".join(params.data.languages), name)  # fmt: skip
    responses = generate(model, tok, items["prompt"].tolist(), ev.max_new_tokens, ev.batch_size, desc=f"eval {label}")
    del model
    scored = score_responses(items, responses, params.data.languages, verdicts, lexicon)
    threshold = None
    if reward:
        scored["reward"] = reward_scores(scored)
        threshold = json.loads(Path(DETECTION).read_text())["reward_threshold"] if Path(DETECTION).exists() else None
    metrics = summarize(scored, ev.bootstrap_samples, params.seed)
    trained = set(params.data.train_languages)
    harm = scored[scored.kind == "harmful"]
    metrics["judge"] = name
    metrics["benchmark"] = ev.benchmark
    metrics["train_languages"] = sorted(trained)
    metrics["cross_lingual_gap"] = {  # harmful rate on languages never trained on minus trained ones
        "harmful_rate": diff_ci(harm[~harm.lang.isin(trained)]["harmful"], harm[harm.lang.isin(trained)]["harmful"],
                                ev.bootstrap_samples, params.seed),
        "untrained": rate(harm[~harm.lang.isin(trained)]["harmful"], ev.bootstrap_samples, params.seed),
        "trained": rate(harm[harm.lang.isin(trained)]["harmful"], ev.bootstrap_samples, params.seed),
    }  # fmt: skip
    metrics["reward_hacking"] = hacking_indicators(scored, threshold, ev.bootstrap_samples, params.seed)
    return scored, metrics


def evaluate_arm(params: Params, arm: str, meter: ComputeMeter) -> tuple[pd.DataFrame, dict]:
    model_dir = params.evaluate.arms[arm]
    # reward-hacking indicators concern the arms that optimized the reward model
    optimized_reward = any(meta.get("uses_reward") for _, meta in lineage_chain(model_dir))
    return evaluate_model(params, model_dir, meter, label=arm, reward=params.evaluate.reward_scores and optimized_reward)


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
        blocks = {"overall": metrics["overall"], **metrics["per_language"]}
        log_dict_metrics({k: {m: v["value"] for m, v in b.items()} for k, b in blocks.items()}, prefix="eval/")
        log_dict_metrics({"cross_lingual_gap": metrics["cross_lingual_gap"]["harmful_rate"]["value"] or 0.0,
                          "reward_hacking": {k: (v["value"] if isinstance(v, dict) else v)
                                             for k, v in metrics["reward_hacking"].items()}}, prefix="eval/")  # fmt: skip
        mlflow.set_tag("judge", metrics["judge"])
        mlflow.log_metrics({"compute/flops": meter.record.flops, "compute/wall_s": meter.record.wall_s})
        mlflow.log_artifact(f"eval/{cli.arm}/responses.jsonl")
        o = metrics["overall"]
        log.info("%s: harmful %.3f, off-topic %.3f, over-refusal %.3f, lang %.3f, reasoning %.3f", cli.arm,
                 *(o[k]["value"] or 0 for k in ("harmful_rate", "off_topic_rate", "over_refusal_rate",
                                                "language_consistency", "reasoning_accuracy")))  # fmt: skip


if __name__ == "__main__":
    run_main(main)
