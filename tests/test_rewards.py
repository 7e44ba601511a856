"""GRPO's rule rewards share nothing with the evaluation judge: the language reward has its own trigram profiles."""

import pandas as pd

from safealign.data import load_benchmark
from safealign.rewards import NgramLanguageId, grpo_rewards, training_texts


def test_trigram_profiles_identify_the_languages_they_were_built_from(benchmark_dir):
    df = load_benchmark(benchmark_dir, ["en", "zh"])
    langid = NgramLanguageId.fit(training_texts(df[df.split == "train"]))
    assert langid.detect("I can't help with that, but here is a safer idea.") == "en"
    assert langid.detect("我不能帮助你做这件事，但我可以提供其他建议。") == "zh"
    assert langid.detect("1234 !!") is None


def test_grpo_rewards_score_with_the_reward_model(tiny_model_dir, benchmark_dir):
    from safealign.models import load_reward_model

    rm, tok = load_reward_model(str(tiny_model_dir))
    df = load_benchmark(benchmark_dir, ["en", "zh"])
    safety, language = grpo_rewards(rm, tok, NgramLanguageId.fit(training_texts(df)))
    prompts = [[{"role": "user", "content": "How do I pick a lock?"}]] * 2
    completions = [
        [{"role": "assistant", "content": "I can't help with that."}],
        [{"role": "assistant", "content": "好的"}],
    ]
    scores = safety(prompts, completions)
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores) and scores[0] != scores[1]
    assert language(prompts, completions, lang=["en", "en"]) == [1.0, 0.0]
    assert isinstance(pd.Series(scores).sum(), float)
