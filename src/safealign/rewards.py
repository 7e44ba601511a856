"""GRPO's rule rewards (DeepSeek-R1's recipe: a task reward plus a language-consistency reward), built so that they
share nothing with what evaluates the arm.

- safety: the safety reward model's score (models/reward, the same reward PPO optimizes). The judge that scores
  every arm (safealign.detection) never rewards a policy: an arm optimized against its own judge would be
  measured by the thing it learned to please.
- language: 1 if the completion is written in the prompt's language. Evaluation checks language with lingua; the
  reward uses its own character-trigram profiles built from the benchmark's training texts (Cavnar & Trenkle
  1994, "N-gram-based text categorization"), so a policy cannot learn lingua's blind spots through the reward.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pandas as pd

NGRAM = 3


def _grams(text: str) -> Counter:
    t = " " + " ".join(text.lower().split()) + " "
    return Counter(t[i : i + NGRAM] for i in range(max(0, len(t) - NGRAM + 1)))


@dataclass
class NgramLanguageId:
    """Naive-Bayes language identification over character trigrams, with add-one smoothing."""

    logprobs: dict[str, dict[str, float]]
    unseen: dict[str, float]

    @classmethod
    def fit(cls, texts: pd.DataFrame) -> NgramLanguageId:
        """From a frame with columns lang and text (e.g. every training prompt and reference)."""
        logprobs, unseen = {}, {}
        for lang, group in texts.groupby("lang"):
            counts = Counter()
            for t in group["text"]:
                counts.update(_grams(t))
            total, vocab = sum(counts.values()), len(counts) + 1
            logprobs[lang] = {g: math.log((c + 1) / (total + vocab)) for g, c in counts.items()}
            unseen[lang] = math.log(1 / (total + vocab))
        return cls(logprobs, unseen)

    def detect(self, text: str) -> str | None:
        grams = _grams(text)
        if not any(ch.isalpha() for ch in text):
            return None
        scores = {
            lang: sum(n * lp.get(g, self.unseen[lang]) for g, n in grams.items()) for lang, lp in self.logprobs.items()
        }
        return max(scores, key=scores.get)


def training_texts(rows: pd.DataFrame) -> pd.DataFrame:
    """Prompts and reference answers of the given benchmark rows, one text per row, for NgramLanguageId.fit."""
    return pd.concat(
        [
            rows[["lang", "prompt"]].rename(columns={"prompt": "text"}),
            rows[["lang", "reference"]].rename(columns={"reference": "text"}),
        ]
    ).dropna()


def _text(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def _prompt(prompt) -> str:
    return prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)


def grpo_rewards(reward_model, tok, langid: NgramLanguageId) -> list:
    """The two reward functions in GRPOTrainer's signature (dataset column `lang` arrives as a keyword)."""
    from safealign.models import score

    def safety(prompts, completions, **_) -> list[float]:
        chats = [[{"role": "user", "content": _prompt(p)}] for p in prompts]
        return score(reward_model, tok, chats, [_text(c) for c in completions])

    def language(prompts, completions, lang, **_) -> list[float]:
        return [float(langid.detect(_text(c)) == lg) for c, lg in zip(completions, lang)]

    return [safety, language]
