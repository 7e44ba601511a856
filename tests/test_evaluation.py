"""Which languages a rate is reported for: the judge validated there, and the model writing the language."""

import pandas as pd

from safealign.evaluation import measurability


def test_a_language_is_measured_only_where_the_judge_is_validated_and_the_model_writes_it():
    scored = pd.DataFrame(
        {
            "lang": ["en"] * 4 + ["zh"] * 4 + ["ja"] * 4,
            "on_topic": [1, 1, 1, 0] + [1, 0, 0, 0] + [1, 1, 1, 1],
            "lang_ok": [1, 1, 1, 1] + [1, 1, 1, 1] + [1, 1, 1, 1],
        }
    )
    out = measurability(scored, validated=["en", "zh"], min_on_topic=0.6)
    assert out["en"] == {"measured": True, "on_topic_share": 0.75, "usable_share": 0.75, "reasons": []}
    assert not out["zh"]["measured"] and out["zh"]["reasons"] == [
        "the model writes no usable zh: 25% of answers on topic and in zh (< 60%; on topic in any language: 25%)"
    ]
    assert not out["ja"]["measured"] and out["ja"]["reasons"] == ["judge not validated in this language (stage detect)"]
    # a judge validated nowhere (the default run of 2026-12-02): nothing is measured, whatever the model writes
    assert not any(v["measured"] for v in measurability(scored, validated=[], min_on_topic=0.0).values())


def test_on_topic_answers_in_another_language_do_not_make_a_language_measurable():
    # Gemma after SFT answers Bengali prompts with English refusals: on topic, safe, but not Bengali
    scored = pd.DataFrame(
        {
            "lang": ["bn"] * 5 + ["en"] * 5 + ["bn"],
            "kind": ["harmful"] * 10 + ["reasoning"],
            "on_topic": [1, 1, 1, 1, 0] + [1, 1, 1, 1, 1] + [None],
            "lang_ok": [1, 0, 0, 0, 1] + [1, 1, 1, 1, 1] + [1],  # a reasoning answer (a number) does not count
        }
    )
    out = measurability(scored, validated=["bn", "en"], min_on_topic=0.6)
    assert out["bn"]["on_topic_share"] == 0.8 and out["bn"]["usable_share"] == 0.2 and not out["bn"]["measured"]
    assert out["en"]["measured"]


def test_length_batches_cap_rows_and_padded_tokens():
    from safealign.generation import length_batches

    lengths = [40, 300, 50, 45, 120, 310, 42, 900]
    rows_only = length_batches(lengths, batch_size=3)
    assert rows_only == [[0, 6, 3], [2, 4, 1], [5, 7]]  # sorted by length, 3 rows each
    budget = length_batches(lengths, batch_size=3, batch_tokens=400)
    assert sorted(i for b in budget for i in b) == list(range(len(lengths)))  # every prompt, once
    assert all(len(b) * max(lengths[i] for i in b) <= 400 or len(b) == 1 for b in budget)
    assert budget == [[0, 6, 3], [2, 4], [1], [5], [7]]  # 2 x 310 > 400; 900 tokens still gets a batch alone
    assert length_batches([], 4, 100) == []
