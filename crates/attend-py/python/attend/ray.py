"""Tagging and predicting on Ray Data (``pip install 'attend[ray]'``).

Callable classes for ``ray.data.Dataset.map_batches``: Ray builds one per
actor, which reads the model once (a process reads a model directory once
whatever the number of instances), and each batch computes on
``n_threads`` threads (1 by default; give each actor ``num_cpus`` to
match)::

    import ray
    import attend.ray

    ds = ray.data.from_items([{"text": t} for t in texts])   # or read_text, read_parquet
    tagged = ds.map_batches(
        attend.ray.Tag, fn_constructor_kwargs={"model": "runs/ewt"},
        concurrency=2, num_cpus=1, batch_size=64,
    )
    tagged.write_json("tagged/")                             # columns text, conllu, sentences, error

Each row is one document, tagged as ``attend tag`` tags it alone (its
sentences numbered from 1). A row that cannot be read (not UTF-8, a run of
more than ``max_token_chars`` characters without white space) gets its
``error`` and an empty ``conllu``; the job goes on. The model directory
must be readable on every node.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import _cache
from ._base import threads
from ._corpus import DOC, MAX_TOKEN_CHARS, error_record, tag_documents, tagger, word_records

__all__ = ["Predict", "Tag"]


class Tag:
    """Segments and tags the texts in column ``column`` of each batch.

    With ``output="conllu"`` each row gains ``conllu`` (its CoNLL-U),
    ``sentences`` and ``error`` (None, or why the row failed). With
    ``output="records"`` a batch becomes one row per word (the columns of
    :data:`attend.dask.RECORD_COLUMNS`; ``doc`` is the row's
    ``id_column`` value, or None without one).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        column: str = "text",
        output: str = "conllu",
        id_column: str | None = None,
        n_threads: int = 1,
        max_token_chars: int | None = MAX_TOKEN_CHARS,
    ) -> None:
        if output not in ("conllu", "records"):
            raise ValueError(f"output must be 'conllu' or 'records', got {output!r}")
        self.model = os.path.abspath(os.fspath(model))
        self.column, self.output, self.id_column = column, output, id_column
        self.n_threads = threads(n_threads)
        self.max_token_chars = max_token_chars
        tagger(self.model)  # read now, once per actor; a wrong path fails at start

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.column not in batch:
            raise KeyError(f"no column {self.column!r} in the batch (columns: {sorted(batch)}); pass column=...")
        records = self.output == "records"
        results = tag_documents(list(batch[self.column]), self.model, self.n_threads, self.max_token_chars, records)
        errors = [None if e is None else e.replace(DOC, "this row's text", 1) for _, _, _, e in results]
        if records:
            keys = list(batch[self.id_column]) if self.id_column else [None] * len(results)
            rows: list[dict[str, Any]] = []
            for key, (text, _, _, _), error in zip(keys, results, errors):
                rows.extend([error_record(key, error)] if error is not None else word_records(key, json.loads(text), 0))
            return {c: np.array([r[c] for r in rows], dtype=object) for c in (rows[0] if rows else error_record(None, ""))}
        out = dict(batch)
        out["conllu"] = np.array([text or "" for text, _, _, _ in results], dtype=object)
        out["sentences"] = np.array([n for _, n, _, _ in results], dtype=np.int64)
        out["error"] = np.array(errors, dtype=object)
        return out


class Predict:
    """Labels (or with ``proba``, class probabilities) of the series in
    column ``column``: a tensor column ``(rows, n_channels, n_timepoints)``
    or ``(rows, n_timepoints)``, or a column of arrays of any length. Each
    row gains ``label`` (or ``proba``)."""

    def __init__(self, model: str | os.PathLike[str], *, column: str = "series", proba: bool = False, n_threads: int = 1) -> None:
        self.est = _cache.model(model, threads(n_threads))
        if not hasattr(self.est, "classes_") or not hasattr(self.est, "n_channels_"):
            raise TypeError(f"{model} holds a {type(self.est).__name__}, not a sequence model")
        self.column, self.proba = column, proba

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        X = batch[self.column]
        if X.dtype == object:
            X = [np.asarray(x)[np.newaxis, :] if np.ndim(x) == 1 else np.asarray(x) for x in X]
        out = dict(batch)
        if self.proba:
            out["proba"] = self.est.predict_proba(X)
        else:
            out["label"] = self.est.predict(X)
        return out
