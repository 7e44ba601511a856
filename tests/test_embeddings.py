"""The judge's embedding store is only a cache: what it returns is what the encoder computes, and a later process
reads it instead of embedding again."""

import numpy as np
import pytest

from safealign import embeddings


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache folder and an empty process cache, as in a new stage process on a new machine."""
    monkeypatch.setenv("SAFEALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(embeddings, "_EMBEDDED", {})
    monkeypatch.setattr(embeddings, "_LOADED", set())


def live(texts: list[str], role: str) -> np.ndarray:
    m = embeddings._e5()
    return np.asarray(m.query(texts) if role == "query" else m.passage(texts), dtype=np.float32)


def test_vectors_are_stored_and_a_later_process_reads_them_instead_of_embedding(fresh, monkeypatch):
    texts = {"passage": ["I can't help with that.", "Paris is the capital."], "query": ["Capital of France?"]}
    first = {role: embeddings.embed(ts, role) for role, ts in texts.items()}
    assert embeddings.store_path().exists()
    expected = {role: live(ts, role) for role, ts in texts.items()}
    # a new process: nothing in memory, and the encoder must not be needed any more
    embeddings._EMBEDDED.clear()
    embeddings._LOADED.clear()
    monkeypatch.setattr(embeddings, "_e5", lambda: pytest.fail("embedded again instead of reading the store"))
    for role, ts in texts.items():
        again = embeddings.embed(ts, role)
        assert np.array_equal(again, first[role]) and np.array_equal(again, expected[role])
    # a role is part of the key: the same text as a query is another vector
    assert embeddings.key("query", "Paris is the capital.") not in embeddings._EMBEDDED


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
