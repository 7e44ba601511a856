"""Stage evaluate@<arm>: generate on held-out prompts in every language and score with the validated judge.

The core is safealign.evaluation: every answer is classed (refusal, partial, compliance, off_topic; helpful or
refusal for benign prompts) by the judge stage detect chose on annotated real answers (or the one params name);
the reward model never judges. A language is measured only where the judge is validated and the model writes the
language. Writes metrics/eval/<arm>.json (each rate with n and an item-clustered 95% interval: overall, per
language, per harm category; the cross-lingual gap; reward-hacking indicators; which languages are not measured
and why) and eval/<arm>/responses.jsonl (every prompt, response, verdict).
"""

from __future__ import annotations

import logging

from safealign.compute import ComputeMeter
from safealign.config import ConfigError
from safealign.data import write_jsonl
from safealign.evaluation import evaluate_model
from safealign.models import lineage_chain
from safealign.stages.common import run_main, setup, write_json
from safealign.tracking import log_dict_metrics, record_compute, stage_run

log = logging.getLogger(__name__)
RATES = ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency", "reasoning_accuracy")


def main(argv: list[str] | None = None) -> None:
    params, cli = setup("evaluate", argv, with_arm=True)
    if cli.arm not in params.evaluate.arms:
        raise ConfigError(f"params.yaml: evaluate.arms has no arm '{cli.arm}' (have {sorted(params.evaluate.arms)})")
    model_dir = params.evaluate.arms[cli.arm]
    # reward-hacking indicators concern the arms that optimized the reward model
    optimized_reward = any(meta.get("uses_reward") for _, meta in lineage_chain(model_dir))
    p = params.to_dict()
    logged = {"evaluate": p["evaluate"], "data": p["data"], "seed": params.seed}
    with stage_run("evaluate", params.mlflow.experiment, logged, arm=cli.arm):
        import mlflow

        with ComputeMeter(f"evaluate@{cli.arm}") as meter:
            scored, metrics = evaluate_model(
                params, model_dir, meter, label=cli.arm, reward=params.evaluate.reward_scores and optimized_reward
            )
        write_jsonl(
            f"eval/{cli.arm}/responses.jsonl", scored.astype(object).where(scored.notna(), None).to_dict("records")
        )
        write_json(f"metrics/eval/{cli.arm}.json", metrics)
        o = metrics["overall"]
        write_json(
            f"metrics/summary/eval_{cli.arm}.json",
            {k: (o.get(k) or {}).get("value") for k in RATES}
            | {"measured_languages": len(metrics["measured_languages"])},
        )
        record_compute(meter.record, f"metrics/compute/evaluate_{cli.arm}.json", params.cost)
        measured = {lg: b for lg, b in metrics["per_language"].items() if "not_measured" not in b}
        blocks = {"overall": metrics["overall"], **measured}
        log_dict_metrics({k: {m: v["value"] for m, v in b.items()} for k, b in blocks.items()}, prefix="eval/")
        log_dict_metrics(
            {
                "cross_lingual_gap": metrics["cross_lingual_gap"]["harmful_rate"]["value"] or 0.0,
                "reward_hacking": {
                    k: (v["value"] if isinstance(v, dict) else v) for k, v in metrics["reward_hacking"].items()
                },
            },
            prefix="eval/",
        )
        identity = metrics["judge_identity"]
        mlflow.set_tags(
            {
                "judge": identity["judge"],
                "judge.settings": str(identity["settings"]),
                "judge.validated_languages": ",".join(identity["validated_languages"]) or "none",
                "measured_languages": ",".join(metrics["measured_languages"]) or "none",
            }
        )
        log_dict_metrics({"judge_test": identity["judge_test"]}, prefix="judge/")
        mlflow.log_artifact(f"eval/{cli.arm}/responses.jsonl")
        log.info(
            "%s (measured in %s): harmful %s, off-topic %s, over-refusal %s, lang %s, reasoning %s",
            cli.arm,
            ",".join(metrics["measured_languages"]) or "no language",
            *(
                o.get(k, {}).get("value")
                for k in (
                    "harmful_rate",
                    "off_topic_rate",
                    "over_refusal_rate",
                    "language_consistency",
                    "reasoning_accuracy",
                )
            ),
        )


if __name__ == "__main__":
    run_main(main)
