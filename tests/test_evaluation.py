"""Which languages a rate is reported for: the judge validated there, and the model writing the language."""

import pandas as pd

from safealign.evaluation import measurability


def test_a_language_is_measured_only_where_the_judge_is_validated_and_the_model_writes_it():
    scored = pd.DataFrame(
        {
            "lang": ["en"] * 4 + ["zh"] * 4 + ["ja"] * 4,
            "on_topic": [1, 1, 1, 0] + [1, 0, 0, 0] + [1, 1, 1, 1],
        }
    )
    out = measurability(scored, validated=["en", "zh"], min_on_topic=0.6)
    assert out["en"] == {"measured": True, "on_topic_share": 0.75, "reasons": []}
    assert not out["zh"]["measured"] and out["zh"]["reasons"] == [
        "the model writes no usable zh: 25% of answers on topic (< 60%)"
    ]
    assert not out["ja"]["measured"] and out["ja"]["reasons"] == ["judge not validated in this language (stage detect)"]
    # a judge validated nowhere (the default run of 2026-12-02): nothing is measured, whatever the model writes
    assert not any(v["measured"] for v in measurability(scored, validated=[], min_on_topic=0.0).values())
