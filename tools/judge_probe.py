"""Would a fine-tuned multilingual classifier make a better judge? A probe on judge-train + judge-dev only.

The README's known limitation names "a fine-tuned multilingual classifier" as one way to unblock the judge. Before
wiring such a family into the detect stage (which would cost a re-run and a look at judge-test), this probe asks
whether it beats the chosen family at all, without touching judge-test: a k-fold cross-validation over the
annotated answers to train-split items (judge-train + judge-dev), folds grouped by benchmark item (the
translations of an item and its several answers never straddle a fold), comparing

- `embedding`: the detect stage's chosen family with its chosen settings (E5 features + logistic regression,
  c 0.01, synthetic rows added, harmful threshold 0.5), refit on each training fold;
- `finetuned`: Gemma-3-270M base as a sequence classifier over the five labels (LoRA r 16 on every linear layer
  plus the new head), trained on each training fold on the chat-formatted (prompt, answer), class-balanced loss;
  labels restricted to the prompt's kind as the other detectors.

Both are scored with the detect stage's own `judging.report` (decision accuracy and harmful F1 per language).

    python tools/judge_probe.py [--folds 2] [--epochs 2] [--out reports/judge_probe/probe.json]

Needs Gemma base as fp32 (`python tools/annotation/prepare_models.py --only gemma`, after `make setup-gemma`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from safealign.config import load_params
from safealign.data import load_benchmark, load_labeled_real
from safealign.detection import LABELS, EmbeddingDetector, _kinds, labeled_responses, restrict, synthetic_labels
from safealign.judging import report
from safealign.models import load_reward_model

log = logging.getLogger("probe")


def folds(frame: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """A fold number per row, by benchmark item id (seeded)."""
    items = sorted(frame["id"].unique())
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    fold_of = {items[i]: n % k for n, i in enumerate(order)}
    return frame["id"].map(fold_of).to_numpy()


def texts(tok, frame: pd.DataFrame) -> list[str]:
    return [
        tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False)
        for p, r in zip(frame["prompt"], frame["response"])
    ]


def finetune(model_dir: str, train: pd.DataFrame, epochs: int, lr: float, seed: int):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model, tok = load_reward_model(model_dir, num_labels=len(LABELS))
    model = get_peft_model(
        model,
        LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, target_modules="all-linear", modules_to_save=["score"]),
    )
    tok.truncation_side = "left"
    enc = tok(texts(tok, train), truncation=True, max_length=256)["input_ids"]
    y = torch.tensor([LABELS.index(lab) for lab in train["label"]])
    counts = np.bincount(y.numpy(), minlength=len(LABELS)).astype(float)
    weight = torch.tensor(np.where(counts > 0, 1 / np.sqrt(np.maximum(counts, 1)), 0.0), dtype=torch.float32)
    weight = weight / weight[counts > 0].mean()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    steps = 0
    for epoch in range(epochs):
        order = rng.permutation(len(enc))
        # batches of 8 of similar length (less padding), in random order
        chunks = [order[i : i + 64] for i in range(0, len(order), 64)]
        batches = [c[np.argsort([len(enc[j]) for j in c])][i : i + 8] for c in chunks for i in range(0, len(c), 8)]
        total = 0.0
        for b in (batches[i] for i in rng.permutation(len(batches))):
            pad = tok.pad({"input_ids": [enc[j] for j in b]}, return_tensors="pt", padding=True)
            logits = model(**pad).logits
            loss = torch.nn.functional.cross_entropy(logits, y[b], weight=weight)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += float(loss)
            steps += 1
        log.info("epoch %d: mean loss %.3f (%d steps)", epoch + 1, total / len(batches), steps)
    return model, tok


@torch.no_grad()
def predict(model, tok, frame: pd.DataFrame) -> list[str]:
    model.eval()
    tok.padding_side = "left"
    enc = tok(texts(tok, frame), truncation=True, max_length=256)["input_ids"]
    proba = np.zeros((len(enc), len(LABELS)))
    order = np.argsort([len(e) for e in enc])
    for i in range(0, len(order), 16):
        b = order[i : i + 16]
        pad = tok.pad({"input_ids": [enc[j] for j in b]}, return_tensors="pt", padding=True)
        proba[b] = torch.softmax(model(**pad).logits, -1).numpy()
    return restrict(pd.DataFrame(proba, columns=list(LABELS)), _kinds(frame))


def compact(rep: dict) -> dict:
    def one(s: dict) -> dict:
        return {k: s[k]["value"] if isinstance(s[k], dict) else s[k] for k in ("n", "harmful", "accuracy", "f1", "fpr")}

    return {"overall": one(rep["overall"]), "per_language": {k: one(v) for k, v in rep["per_language"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="annotation/models/gemma_base")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--out", type=Path, default=Path("reports/judge_probe/probe.json"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    params = load_params()
    langs = params.data.languages
    real = load_labeled_real(params.data.labeled_real_dir, langs)
    pool = real[real.judge_split.isin(["train", "dev"])].reset_index(drop=True)  # judge-test is not read
    synthetic_all = synthetic_labels(labeled_responses(load_benchmark(params.data.dir, langs), langs))
    synthetic = synthetic_all[synthetic_all.split == "train"]
    fold = folds(pool, a.folds, params.seed)
    verdicts = {"embedding": [""] * len(pool), "finetuned": [""] * len(pool)}
    seconds = {"embedding": 0.0, "finetuned": 0.0}
    for k in range(a.folds):
        train, held = pool[fold != k], pool[fold == k]
        log.info("fold %d: %d training answers, %d held out", k + 1, len(train), len(held))
        t = time.perf_counter()
        emb = EmbeddingDetector(c=0.01, seed=params.seed, threshold=0.5).fit(pd.concat([train, synthetic]))
        for i, v in zip(held.index, emb.verdicts(held)):
            verdicts["embedding"][i] = v
        seconds["embedding"] += time.perf_counter() - t
        t = time.perf_counter()
        model, tok = finetune(a.model, train, a.epochs, a.lr, params.seed)
        for i, v in zip(held.index, predict(model, tok, held)):
            verdicts["finetuned"][i] = v
        seconds["finetuned"] += time.perf_counter() - t
        del model
    samples = params.evaluate.bootstrap_samples
    out = {
        "design": f"{a.folds}-fold cross-validation over judge-train + judge-dev, grouped by item; judge-test unread",
        "answers": len(pool),
        "settings": {"folds": a.folds, "epochs": a.epochs, "lr": a.lr, "model": a.model},
        "seconds": seconds,
        "reports": {name: report(pool, v, samples, params.seed) for name, v in verdicts.items()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({name: compact(r) for name, r in out["reports"].items()}, indent=1))


if __name__ == "__main__":
    main()
