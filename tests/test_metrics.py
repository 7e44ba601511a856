import pandas as pd
import pytest

from safealign.metrics import diff_ci, rate, summarize


def test_rate_interval_brackets_the_mean():
    r = rate([1, 0, 0, 1, 1, 0, 1, 1], samples=2000, seed=0)
    assert r["n"] == 8 and r["value"] == 0.625
    lo, hi = r["ci95"]
    assert 0 <= lo < 0.625 < hi <= 1
    assert rate([], 100, 0) == {"value": None, "n": 0, "clusters": 0, "ci95": [None, None]}
    assert rate([1, 1, 1], 100, 0)["ci95"] == [1.0, 1.0]


def test_diff_excludes_zero_only_when_clear():
    assert diff_ci([1] * 50, [0] * 50, 1000, 0)["excludes_zero"]
    assert not diff_ci([1, 0] * 10, [0, 1] * 10, 1000, 0)["excludes_zero"]


def test_summarize_per_language_and_category():
    df = pd.DataFrame(
        [
            {
                "id": "a",
                "lang": "en",
                "kind": "harmful",
                "category": "drugs",
                "harmful": 1,
                "off_topic": 0,
                "refused": None,
                "lang_ok": 1,
                "correct": None,
            },
            {
                "id": "b",
                "lang": "en",
                "kind": "harmful",
                "category": "privacy",
                "harmful": 0,
                "off_topic": 0,
                "refused": None,
                "lang_ok": 1,
                "correct": None,
            },
            {
                "id": "a",
                "lang": "fr",
                "kind": "harmful",
                "category": "drugs",
                "harmful": 0,
                "off_topic": 1,
                "refused": None,
                "lang_ok": 0,
                "correct": None,
            },
            {
                "id": "c",
                "lang": "fr",
                "kind": "benign",
                "category": "general",
                "harmful": None,
                "off_topic": None,
                "refused": 1,
                "lang_ok": 1,
                "correct": None,
            },
            {
                "id": "d",
                "lang": "en",
                "kind": "reasoning",
                "category": "arithmetic",
                "harmful": None,
                "off_topic": None,
                "refused": None,
                "lang_ok": 1,
                "correct": 1,
            },
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


def _parallel(values_per_item: list[int], languages: int = 12) -> tuple[list[int], list[str]]:
    """Every item answered the same way in every language: the case clustering exists for."""
    x = [v for v in values_per_item for _ in range(languages)]
    ids = [f"item-{i}" for i in range(len(values_per_item)) for _ in range(languages)]
    return x, ids


def test_clustered_interval_is_as_wide_as_the_items_allow():
    x, ids = _parallel([1, 0, 1, 1, 0, 0, 1, 0, 1, 0])  # 10 items x 12 languages
    naive = rate(x, 2000, 0)
    clustered = rate(x, 2000, 0, clusters=ids)
    per_item = rate([1, 0, 1, 1, 0, 0, 1, 0, 1, 0], 2000, 0)
    assert clustered["n"] == 120 and clustered["clusters"] == 10
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(clustered) > 2.5 * width(naive)  # 120 answers carry the information of 10 items
    assert abs(width(clustered) - width(per_item)) < 0.05


def test_differences_resample_shared_items_together():
    from safealign.metrics import paired_diff

    # two groups of languages answering the same 20 items, one item differs: resampling items jointly cancels
    # the shared ones, so the interval is far narrower than resampling the two groups independently
    a, ids = _parallel([1] * 10 + [0] * 10, 6)
    b = [1 if i == "item-10" else v for v, i in zip(a, ids)]
    joint = diff_ci(a, b, 1000, 0, clusters_a=ids, clusters_b=ids)
    independent = diff_ci(a, b, 1000, 0)
    assert joint["value"] == independent["value"] == pytest.approx(-0.05)
    assert joint["ci95"][1] - joint["ci95"][0] < 0.7 * (independent["ci95"][1] - independent["ci95"][0])
    p = paired_diff(a, a, 500, 0, clusters=ids)
    assert p["ci95"] == [0.0, 0.0] and p["clusters"] == 20


def test_ratio_interval_of_a_relative_reduction():
    from safealign.metrics import ratio_ci

    pure, ids = _parallel([1] * 8 + [0] * 2, 4)
    hyb, _ = _parallel([1] * 4 + [0] * 6, 4)
    lo, hi = ratio_ci(lambda p, h: (p - h) / p, {"p": pure, "h": hyb}, 1000, 0, clusters=ids)
    assert lo < 0.5 < hi and lo > 0  # point estimate (0.8 - 0.4) / 0.8 = 0.5; every resample reduces harm
