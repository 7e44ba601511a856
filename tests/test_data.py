from safealign.data import eval_items, load_benchmark, preference_rows, rl_prompts, sft_rows, train_split


def test_training_sets_come_from_the_train_split_of_train_languages(benchmark_dir):
    df = load_benchmark(benchmark_dir, ["en", "zh"])
    train = train_split(df, ["en"])
    assert set(train["split"]) == {"train"} and set(train["lang"]) == {"en"}
    sft = sft_rows(train)
    assert len(sft) == len(train)
    assert sft[0]["prompt"][0]["role"] == "user" and sft[0]["completion"][0]["role"] == "assistant"
    pairs = preference_rows(train)
    harmful = (train["kind"] == "harmful").sum()
    benign = (train["kind"] == "benign").sum()
    assert len(pairs) == 2 * harmful + benign  # compliant and partial per harmful item, over-refusal per benign
    for p in pairs:
        assert p["chosen"][0]["content"] != p["rejected"][0]["content"]
    prompts = rl_prompts(train)
    assert {p["kind"] for p in prompts} == {"harmful", "benign"}


def test_eval_subsample_is_parallel_and_spread_over_categories(benchmark_dir):
    df = load_benchmark(benchmark_dir, ["en", "zh"])
    ev = eval_items(df, ["en", "zh"], {"harmful": 4, "benign": 2, "reasoning": 2}, seed=1)
    assert set(ev["split"]) == {"eval"}
    by_lang = {lang: set(g["id"]) for lang, g in ev.groupby("lang")}
    assert by_lang["en"] == by_lang["zh"]  # the same items in every language
    harm = ev[(ev.lang == "en") & (ev.kind == "harmful")]
    assert len(harm) == 4 and harm["category"].nunique() == 4  # round-robin over the 4 categories
    again = eval_items(df, ["en", "zh"], {"harmful": 4, "benign": 2, "reasoning": 2}, seed=1)
    assert list(again["id"]) == list(ev["id"])
    assert len(eval_items(df, ["en"], None, 0)) == (df[(df.lang == "en")]["split"] == "eval").sum()
