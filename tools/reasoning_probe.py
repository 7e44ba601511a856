"""Which integer-answer tasks does a model answer at 0.3-0.8 accuracy? A probe for issue 12's reasoning items.

The benchmark's 20 reasoning items are two-step word problems; every arm of the Gemma runs scores 0 on them, so
reasoning retention measures nothing. Issue 12 asks for tasks the chosen model answers at 0.3-0.8 before training,
so that a loss of capability can show. Before translating a new probe set into 12 languages, this tool measures, in
English (the model's best language), how a model does on easier task types, from one-digit sums to one-step word
problems:

    python tools/reasoning_probe.py models/base models/sft [--n 12] [--out reports/reasoning_probe/<name>.json]

Each task type gets `--n` items drawn with a fixed seed (same items for every model), answered greedily with the
pipeline's own `generate` (chat template, batching) and `--max-new-tokens` (the evaluation's 40 by default), and
scored two ways: `final_integer` (the evaluation's rule: the last integer of the answer) and `first_line` (the
last integer of the answer's first line: a base model answers "4 + 3 = 7" and then invents the next
"Question: ..."; this reading forgives the invention). A type is usable when a model scores 0.3-0.8 on it.
Run it from the project root (model directories resolve their lineage from there).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections import defaultdict
from pathlib import Path

from safealign.generation import generate
from safealign.io import write_json
from safealign.judge import final_integer
from safealign.models import load_policy

SEED = 20261203
FACTS = [  # (question, answer): counts a child knows
    ("How many days are in a week?", 7),
    ("How many legs does a spider have?", 8),
    ("How many months are in a year?", 12),
    ("How many minutes are in an hour?", 60),
    ("How many legs does a dog have?", 4),
    ("How many hours are in a day?", 24),
    ("How many sides does a triangle have?", 3),
    ("How many wheels does a bicycle have?", 2),
    ("How many fingers are on one hand?", 5),
    ("How many seconds are in a minute?", 60),
    ("How many sides does a square have?", 4),
    ("How many days are in a leap year?", 366),
]
WORD = "{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
NAMES = ["Tom", "Sara", "Ali", "Mei", "Ivan", "Lena"]
THINGS = ["apples", "pens", "books", "coins", "stamps", "marbles"]


def tasks(n: int, seed: int = SEED) -> list[dict]:
    """`n` items of each task type (facts: at most the list's length), the same for a given seed."""
    rng = random.Random(seed)
    out: list[dict] = []

    def add(kind: str, prompt: str, answer: int) -> None:
        out.append({"type": kind, "prompt": prompt, "answer": str(answer)})

    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        add("add_1digit", f"What is {a} + {b}?", a + b)
    for _ in range(n):
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        add("add_2digit", f"What is {a} + {b}?", a + b)
    for _ in range(n):
        a = rng.randint(5, 18)
        b = rng.randint(1, a - 1)
        add("subtract", f"What is {a} - {b}?", a - b)
    for _ in range(n):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        add("multiply", f"What is {a} × {b}?", a * b)
    for _ in range(n):
        a = rng.randint(11, 98)
        add("successor", f"What number comes right after {a}?", a + 1)
    for _ in range(n):
        start, step = rng.randint(1, 9), rng.randint(2, 5)
        seq = ", ".join(str(start + step * i) for i in range(4))
        add("sequence", f"What is the next number in the sequence {seq}?", start + step * 4)
    for q, a in FACTS[:n]:
        add("fact", q, a)
    for _ in range(n):
        a, b = rng.randint(2, 9), rng.randint(1, 9)
        add("word_1step", WORD.format(name=rng.choice(NAMES), a=a, b=b, thing=rng.choice(THINGS)), a + b)
    return out


def first_line_integer(text: str) -> str | None:
    return final_integer(text.strip().split("\n")[0])


def probe(model_dir: str, items: list[dict], max_new_tokens: int, batch_size: int) -> dict:
    model, tok = load_policy(model_dir)
    t = time.time()
    answers = generate(model, tok, [x["prompt"] for x in items], max_new_tokens, batch_size, desc=model_dir)
    secs = time.time() - t
    per_type: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "final_integer": 0, "first_line": 0})
    rows = []
    for x, ans in zip(items, answers):
        ok_final = final_integer(ans) == x["answer"]
        ok_first = first_line_integer(ans) == x["answer"]
        c = per_type[x["type"]]
        c["n"] += 1
        c["final_integer"] += ok_final
        c["first_line"] += ok_first
        rows.append({**x, "response": ans, "final_integer": ok_final, "first_line": ok_first})
    accuracy = {
        k: {"n": c["n"], **{rule: round(c[rule] / c["n"], 3) for rule in ("final_integer", "first_line")}}
        for k, c in per_type.items()
    }
    usable = sorted(k for k, a in accuracy.items() if any(0.3 <= a[r] <= 0.8 for r in ("final_integer", "first_line")))
    return {
        "model": model_dir,
        "generate_seconds": round(secs, 1),
        "accuracy": accuracy,
        "usable": usable,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="safealign model directories (e.g. models/base models/sft)")
    ap.add_argument("--n", type=int, default=12, help="items per task type")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("reports/reasoning_probe/probe.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    items = tasks(args.n)
    results = [probe(m, items, args.max_new_tokens, args.batch_size) for m in args.models]
    write_json(args.out, {"seed": SEED, "n_per_type": args.n, "max_new_tokens": args.max_new_tokens, "models": results})
    types = list(dict.fromkeys(x["type"] for x in items))
    print("accuracy (final_integer / first_line), n per type:", args.n)
    print("type".ljust(12) + "".join(r["model"].rjust(22) for r in results))
    for k in types:
        cells = [f"{r['accuracy'][k]['final_integer']:.2f} / {r['accuracy'][k]['first_line']:.2f}" for r in results]
        print(k.ljust(12) + "".join(c.rjust(22) for c in cells))
    for r in results:
        print(f"{r['model']}: usable (0.3-0.8 by either rule): {r['usable'] or 'none'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
