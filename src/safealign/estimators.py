"""The learned judges' sklearn pipelines saved as plain arrays and JSON (.npz), loaded without running code.

Pickle runs code on load, and skops, which avoids that, costs about 8 s per load on 2 cores (importing it imports
every sklearn estimator, then it scans sys.modules per type): 8 s in every stage that judges (evaluate, the safety
curves). A judge here is a pipeline of the three estimators below; each is rebuilt from its constructor params and
fitted attributes, and anything else is refused. `np.load(allow_pickle=False)` reads only numeric and string arrays.
tests/test_detection.py checks that a loaded judge gives the same probabilities as the one that was saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# estimator -> its fitted attributes (arrays or numbers); the TF-IDF vocabulary is saved apart, as a string array
FITTED = {
    "TfidfVectorizer": ("idf_",),
    "StandardScaler": ("mean_", "scale_", "var_", "n_samples_seen_"),
    "LogisticRegression": ("coef_", "intercept_", "classes_", "n_iter_"),
}


def _classes() -> dict[str, type]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    return {c.__name__: c for c in (TfidfVectorizer, StandardScaler, LogisticRegression)}


def _params(step: Any) -> dict[str, Any]:
    out = {}
    for k, v in step.get_params(deep=False).items():
        if k == "dtype":
            v = np.dtype(v).name
        elif isinstance(v, tuple):
            v = list(v)
        elif callable(v):
            raise ValueError(f"{type(step).__name__}.{k} is a callable: it cannot be saved without code")
        out[k] = v
    return out


def save_pipeline(pipeline: Any, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """A fitted sklearn Pipeline of FITTED estimators (and JSON-able `extra`, e.g. a threshold) to `path`."""
    arrays: dict[str, np.ndarray] = {}
    steps = []
    for i, (_, step) in enumerate(pipeline.steps):
        kind = type(step).__name__
        if kind not in FITTED:
            raise ValueError(f"cannot save a {kind}: only {sorted(FITTED)}")
        for attr in (*FITTED[kind], "n_features_in_"):
            if hasattr(step, attr):
                arrays[f"{i}.{attr}"] = np.asarray(getattr(step, attr))
        if kind == "TfidfVectorizer":
            terms = sorted(step.vocabulary_, key=step.vocabulary_.get)
            arrays[f"{i}.terms"] = np.array(terms, dtype=str)
        steps.append({"kind": kind, "params": _params(step)})
    meta = json.dumps({"steps": steps, "extra": extra or {}})
    with open(path, "wb") as f:  # np.savez would add ".npz" to a name that lacks it
        np.savez(f, meta=np.array(meta), **arrays)


def load_pipeline(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(the Pipeline, extra) from save_pipeline's file; refuses object arrays and unknown estimators."""
    from sklearn.pipeline import make_pipeline

    classes = _classes()
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        steps = []
        for i, spec in enumerate(meta["steps"]):
            kind = spec["kind"]
            if kind not in FITTED:
                raise ValueError(f"{path}: refusing to load a {kind}: only {sorted(FITTED)}")
            params = dict(spec["params"])
            if "dtype" in params:
                params["dtype"] = np.dtype(params["dtype"]).type
            if "ngram_range" in params:
                params["ngram_range"] = tuple(params["ngram_range"])
            step = classes[kind](**params)
            if kind == "TfidfVectorizer":
                step.vocabulary_ = {t: j for j, t in enumerate(z[f"{i}.terms"].tolist())}
            for attr in (*FITTED[kind], "n_features_in_"):
                if f"{i}.{attr}" in z:
                    value = z[f"{i}.{attr}"]
                    setattr(step, attr, value.item() if value.ndim == 0 else value)
            steps.append(step)
    return make_pipeline(*steps), meta["extra"]
