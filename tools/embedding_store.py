"""Fill the judge's embedding store (safealign.embeddings, under ~/.cache/safealign) with every text in data/ the
detect stage embeds, ahead of a first run. Optional: stages embed and add whatever the store lacks.

    python tools/embedding_store.py            # every language in params.yaml; about 5 minutes on 2 cores once
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from safealign.config import load_params
from safealign.data import load_benchmark, load_labeled_real
from safealign.detection import labeled_responses, synthetic_labels
from safealign.embeddings import embed, store_path


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
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    n = sum(len(embed(ts, role)) for role, ts in texts().items())
    path = store_path()
    print(
        f"{path}: {n} texts embedded or found, {path.stat().st_size / 2**20:.1f} MiB, "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
