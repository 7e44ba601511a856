"""Rebuild data/embeddings/ (the judge's encoder vectors of every text in data/ it embeds), then version it.

    python tools/embedding_store.py            # every language in params.yaml; a few minutes on 2 cores
    dvc add data && dvc push                   # the store is part of the data version (data.dvc)

The store is a cache (safealign.embeddings): stages embed whatever it lacks, so a stale store only costs time.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from safealign import paths
from safealign.config import load_params
from safealign.data import load_benchmark, load_labeled_real
from safealign.detection import labeled_responses, synthetic_labels
from safealign.embeddings import write_store


def texts(params_file: str = "params.yaml") -> dict[str, list[str]]:
    """{role: texts} the pipeline embeds from data/: the annotated real answers and their prompts, the synthetic
    training answers, and every benchmark prompt."""
    d = load_params(params_file).data
    bench = load_benchmark(d.dir, d.languages)
    real = load_labeled_real(d.labeled_real_dir, d.languages)
    syn = synthetic_labels(labeled_responses(bench, d.languages))
    syn = syn[syn.split == "train"]
    answers = pd.concat([real.get("response", pd.Series(dtype=str)), syn["response"]])
    prompts = pd.concat([real.get("prompt", pd.Series(dtype=str)), syn["prompt"], bench["prompt"]])
    return {"passage": [str(x) for x in answers], "query": [str(x) for x in prompts]}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--out", default=paths.EMBEDDINGS)
    args = cli.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    n = write_store(texts(), args.out)
    size = Path(args.out).stat().st_size / 2**20
    print(f"{args.out}: {n} vectors, {size:.1f} MiB, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
