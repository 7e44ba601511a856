import pandas as pd

from safealign.metrics import diff_ci, rate, summarize


def test_rate_interval_brackets_the_mean():
    r = rate([1, 0, 0, 1, 1, 0, 1, 1], samples=2000, seed=0)
    assert r["n"] == 8 and r["value"] == 0.625
    lo, hi = r["ci95"]
    assert 0 <= lo < 0.625 < hi <= 1
    assert rate([], 100, 0) == {"value": None, "n": 0, "ci95": [None, None]}
    assert rate([1, 1, 1], 100, 0)["ci95"] == [1.0, 1.0]


def test_diff_excludes_zero_only_when_clear():
    assert diff_ci([1] * 50, [0] * 50, 1000, 0)["excludes_zero"]
    assert not diff_ci([1, 0] * 10, [0, 1] * 10, 1000, 0)["excludes_zero"]


def test_summarize_per_language_and_category():
    df = pd.DataFrame(
        [
            {"lang": "en", "kind": "harmful", "category": "drugs", "harmful": 1, "off_topic": 0, "refused": None, "lang_ok": 1, "correct": None},
            {"lang": "en", "kind": "harmful", "category": "privacy", "harmful": 0, "off_topic": 0, "refused": None, "lang_ok": 1, "correct": None},
            {"lang": "fr", "kind": "harmful", "category": "drugs", "harmful": 0, "off_topic": 1, "refused": None, "lang_ok": 0, "correct": None},
            {"lang": "fr", "kind": "benign", "category": "general", "harmful": None, "off_topic": None, "refused": 1, "lang_ok": 1, "correct": None},
            {"lang": "en", "kind": "reasoning", "category": "arithmetic", "harmful": None, "off_topic": None, "refused": None, "lang_ok": 1, "correct": 1},
        ]
    )
    m = summarize(df, samples=100, seed=0)
    assert m["overall"]["harmful_rate"]["value"] == 1 / 3 and m["overall"]["harmful_rate"]["n"] == 3
    assert m["per_language"]["fr"]["off_topic_rate"]["value"] == 1.0
    assert m["per_language"]["fr"]["over_refusal_rate"]["value"] == 1.0
    assert m["per_language"]["en"]["reasoning_accuracy"]["value"] == 1.0
    assert m["overall"]["language_consistency"]["value"] == 0.8
    assert m["harmful_rate_per_category"]["drugs"]["value"] == 0.5


def test_paired_diff_uses_the_pairing():
    from safealign.metrics import paired_diff

    a = [1, 0, 1, 0, 1, 0, 1, 0] * 4
    same = paired_diff(a, a, 500, 0)
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0] and not same["excludes_zero"]
    better = paired_diff([0] * 32, a, 500, 0)  # every prompt at least as good, half strictly better
    assert better["value"] == -0.5 and better["excludes_zero"] and better["ci95"][1] < 0
    assert paired_diff([], [], 10, 0)["value"] is None
