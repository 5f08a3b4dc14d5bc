"""Models loaded once per process: what the Dask and Ray front ends use so
that a worker reads a model directory once, not once per task (and a task
carries a path, not a pickled model)."""

from __future__ import annotations

import copy
import os
import threading
from typing import Any

_LOCK = threading.Lock()
_MODELS: dict[str, tuple[tuple[int, ...], Any]] = {}
_LOADS = 0


def _stamp(path: str) -> tuple[int, ...]:
    """When the files of a model directory last changed (a model saved
    again over the same path is loaded again)."""
    stamps = []
    for sub in ("", "segmenter"):
        for name in ("config.json", "model.safetensors", "vocab.json"):
            try:
                stamps.append(os.stat(os.path.join(path, sub, name)).st_mtime_ns)
            except OSError:
                stamps.append(0)
    return tuple(stamps)


def model(path: str | os.PathLike[str], n_threads: int | None = None) -> Any:
    """The fitted estimator in model directory ``path``, loaded on this
    process's first call for it (and again if its files change); with
    ``n_threads``, a shallow copy that computes on that many threads (the
    weights are shared, never copied)."""
    from . import load

    global _LOADS
    key = os.path.realpath(os.fspath(path))
    stamp = _stamp(key)
    with _LOCK:
        cached = _MODELS.get(key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load(key))
            _MODELS[key] = cached
            _LOADS += 1
    est = cached[1]
    if n_threads is not None:
        est = copy.copy(est)
        est.n_threads = n_threads
    return est


def loads() -> int:
    """How many times this process has read a model directory."""
    return _LOADS
