"""Stage evaluate@<arm>: generate on held-out prompts in every language and score with the validated judge.

The core is safealign.evaluation: every answer is classed (refusal, partial, compliance, off_topic; helpful or
refusal for benign prompts) by the judge stage detect chose on annotated real answers (or the one params name);
the reward model never judges. A language is measured only where the judge is validated and the model writes the
language. Writes metrics/eval/<arm>.json (each rate with n and an item-clustered 95% interval: overall, per
language, per harm category; the cross-lingual gap; reward-hacking indicators; which languages are not measured
and why), metrics/summary/eval_<arm>.json (DVC metrics) and eval/<arm>/responses.jsonl (every prompt, response,
verdict).
"""

from __future__ import annotations

import logging

from safealign import paths, tracking
from safealign.evaluation import evaluate_model
from safealign.io import write_json, write_jsonl
from safealign.models import lineage_chain
from safealign.stages.common import run_main, stage_main

log = logging.getLogger(__name__)
RATES = ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency", "reasoning_accuracy")


def main(argv: list[str] | None = None) -> None:
    with stage_main("evaluate", argv, sections=("evaluate", "data"), arms=lambda p: p.evaluate.arms) as run:
        model_dir = run.params.evaluate.arms[run.arm]
        # reward-hacking indicators concern the arms that optimized the reward model
        optimized_reward = any(meta.get("uses_reward") for _, meta in lineage_chain(model_dir))
        with run.meter:
            scored, metrics = evaluate_model(
                run.params,
                model_dir,
                run.meter,
                label=run.arm,
                reward=run.params.evaluate.reward_scores and optimized_reward,
            )
        write_jsonl(paths.responses(run.arm), scored.astype(object).where(scored.notna(), None).to_dict("records"))
        write_json(paths.eval_metrics(run.arm), metrics)
        o = metrics["overall"]
        # short keys, 3 decimals: `dvc metrics show` prints one column per key of every metrics file
        short = dict(zip(RATES, ("harmful", "off_topic", "over_refusal", "language", "reasoning")))
        summary = {short[k]: _round((o.get(k) or {}).get("value")) for k in RATES}
        write_json(paths.summary(f"eval_{run.arm}"), summary | {"languages": len(metrics["measured_languages"])})
        measured = {lg: b for lg, b in metrics["per_language"].items() if "not_measured" not in b}
        blocks = {"overall": o, **measured}
        tracking.log_dict_metrics({k: {m: v["value"] for m, v in b.items()} for k, b in blocks.items()}, prefix="eval/")
        hacking = {k: (v["value"] if isinstance(v, dict) else v) for k, v in metrics["reward_hacking"].items()}
        gap = metrics["cross_lingual_gap"]["harmful_rate"]["value"]
        tracking.log_dict_metrics({"cross_lingual_gap": gap or 0.0, "reward_hacking": hacking}, prefix="eval/")
        identity = metrics["judge_identity"]
        tracking.set_tags(
            {
                "judge": identity["judge"],
                "judge.settings": str(identity["settings"]),
                "judge.validated_languages": ",".join(identity["validated_languages"]) or "none",
                "measured_languages": ",".join(metrics["measured_languages"]) or "none",
            }
        )
        tracking.log_dict_metrics({"judge_test": identity["judge_test"]}, prefix="judge/")
        tracking.log_artifact(paths.responses(run.arm))
        log.info(
            "%s (measured in %s): %s",
            run.arm,
            ",".join(metrics["measured_languages"]) or "no language",
            ", ".join(f"{k} {(o.get(k) or {}).get('value')}" for k in RATES),
        )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


if __name__ == "__main__":
    run_main(main)
