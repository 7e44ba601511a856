"""The judge's embedding store is only a cache: what it returns is what the encoder computes."""

import numpy as np
import pytest

from safealign import embeddings, paths
from safealign.data import load_labeled_real

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch):
    """An empty process cache, as in a new stage process."""
    monkeypatch.setattr(embeddings, "_EMBEDDED", {})
    monkeypatch.setattr(embeddings, "_LOADED", set())


def live(texts: list[str], role: str) -> np.ndarray:
    m = embeddings._e5()
    return np.asarray(m.query(texts) if role == "query" else m.passage(texts), dtype=np.float32)


def test_store_round_trip_gives_the_encoders_vectors(tmp_path, fresh):
    texts = {"passage": ["I can't help with that.", "Paris is the capital."], "query": ["Capital of France?"]}
    store = tmp_path / "e.npz"
    assert embeddings.write_store(texts, store) == 3
    embeddings._EMBEDDED.clear()
    embeddings._LOADED.clear()
    assert embeddings.load_store(store) == 3
    assert embeddings.load_store(store) == 0  # read once per process
    got = {k: v.copy() for k, v in embeddings._EMBEDDED.items()}
    for role, ts in texts.items():
        assert np.array_equal(np.stack([got[embeddings.key(role, t)] for t in ts]), live(ts, role))
    # a role is part of the key: the same text as a query is another vector
    assert embeddings.key("query", "Paris is the capital.") not in got


def test_store_of_another_encoder_is_ignored(tmp_path, fresh):
    store = tmp_path / "e.npz"
    np.savez(
        store,
        encoder=np.array("some other encoder"),
        keys=np.array([embeddings.key("passage", "x")], dtype="S20"),
        vectors=np.ones((1, embeddings.DIM), np.float32),
    )
    assert embeddings.load_store(store) == 0
    assert embeddings.key("passage", "x") not in embeddings._EMBEDDED


def test_versioned_store_holds_the_annotated_answers_exactly(tmp_path, fresh):
    """The store of the committed data version (read through DVC, as a fresh clone gets it) is stamped with the
    installed encoder, holds the annotated answers and their prompts (the tests' slice of data/labeled_real), and
    its vectors are bit-identical to the encoder's."""
    import dvc.api

    store = tmp_path / "e5-small.npz"
    store.write_bytes(dvc.api.read(paths.EMBEDDINGS, repo=str(ROOT), mode="rb"))
    assert embeddings.load_store(store) > 0, "stale: run python tools/embedding_store.py, then dvc add data"
    real = load_labeled_real(ROOT / "tests/fixtures/labeled_real", ["en", "zh"])
    for role, col in (("passage", "response"), ("query", "prompt")):
        missing = [t for t in real[col] if embeddings.key(role, str(t)) not in embeddings._EMBEDDED]
        assert not missing, f"{len(missing)} annotated {col}s not in the store: run python tools/embedding_store.py"
    sample = real.groupby("lang").head(3)
    for role, col in (("passage", "response"), ("query", "prompt")):
        ts = [str(x) for x in sample[col]]
        stored = np.stack([embeddings._EMBEDDED[embeddings.key(role, t)] for t in ts])
        assert np.array_equal(stored, live(ts, role))
