"""Tagging and classifying past one machine, on Dask.

``pip install 'attend[dask]'``. The functions here take a Dask collection
and a model *directory* (a path every worker can read: a shared or copied
file system) and return a lazy collection of the results:

- :func:`tag`: raw texts (a ``dask.bag`` of ``str``, ``bytes`` or paths, or
  a ``dask.dataframe`` column) to CoNLL-U, one string per document, or to
  records, one per word (``doc``, ``sentence``, ``token``, ``token_form``,
  ``word``, ``form``, ``upos``, ``xpos``, ``feats``, ``error``).
- :func:`write_conllu`: that CoNLL-U to files, one per partition, each
  written by the worker that tagged it; joined in name order they are
  ``attend tag``'s output.
- :func:`predict`: series (a ``dask.array`` chunked along its first axis,
  or a ``dask.bag`` of arrays of any length) to labels or probabilities.

Each worker process reads a model once (a cache keyed by its path, not a
pickle per task), and each task runs attend on ``n_threads`` threads (1 by
default: Dask's worker threads and processes are the parallelism, so a
worker started with ``--nthreads T`` runs ``T`` tasks of 1 thread each and
the cores are not oversubscribed). Nothing outlives a task but the model,
so any process start method works. A document that cannot be read (not
UTF-8, a run of more than ``max_token_chars`` characters without white
space) gives an error record, not a failed job; a worker that dies has its
partitions computed again elsewhere, as Dask does for any task.

Sentences and paragraphs are numbered on across the whole collection, in
order, as ``attend tag`` numbers one input: the documents' CoNLL-U joined
is ``attend tag``'s output on the documents joined by blank lines.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
    from dask import delayed
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("attend.dask needs Dask: pip install 'attend[dask]' (or dask[distributed])") from e

from . import _cache
from ._base import threads
from ._corpus import DOC, MAX_TOKEN_CHARS, RECORD_COLUMNS, error_record, renumber, tag_documents, word_records

__all__ = ["MAX_TOKEN_CHARS", "RECORD_COLUMNS", "predict", "renumber", "tag", "write_conllu"]

def tag(
    texts: Any,
    model: str | os.PathLike[str],
    *,
    output: str = "conllu",
    n_threads: int = 1,
    max_token_chars: int | None = MAX_TOKEN_CHARS,
) -> Any:
    """Segments and tags raw texts with the tagger in directory ``model``, lazily.

    Parameters
    ----------
    texts : dask.bag.Bag or dask.dataframe.Series
        One document per element: a ``str``, UTF-8 ``bytes``, or an
        ``os.PathLike`` (a file the worker reads). Paragraphs end at
        blank lines, as in ``attend tag``.
    model : path
        A tagger directory with its segmenter (``attend train tagger``).
    output : {"conllu", "records"}
        ``"conllu"``: one CoNLL-U string per document (a document that
        failed gives ``"# error = <message>"`` and a blank line).
        ``"records"``: one dict per word, :data:`RECORD_COLUMNS` (a failed
        document gives one record with ``error`` set and the rest None).
    n_threads : int
        Threads of each task's attend.
    max_token_chars : int or None
        See :data:`MAX_TOKEN_CHARS`; None accepts any run (as the CLI does).

    Returns
    -------
    A ``dask.bag.Bag`` for a bag (one string per document, or the word
    records), for a Series a Series of strings with its index, or a
    DataFrame of word records whose ``doc`` is the row's index label.
    ``doc`` of a bag's documents is their position, from 0.
    """
    if output not in ("conllu", "records"):
        raise ValueError(f"output must be 'conllu' or 'records', got {output!r}")
    n = threads(n_threads)
    model = os.path.abspath(os.fspath(model))
    records = output == "records"
    if isinstance(texts, db.Bag):
        return db.from_delayed(_chain(texts.to_delayed(), model, n, max_token_chars, records))
    if _is_dask_series(texts):
        import dask.dataframe as dd
        import pandas as pd

        parts = _chain(texts.to_delayed(), model, n, max_token_chars, records)
        if records:
            return dd.from_delayed(parts, meta=_records_frame([], texts.index.dtype))
        return dd.from_delayed(parts, meta=pd.Series([], dtype=object, name=texts.name), divisions=texts.divisions)
    raise TypeError(f"texts must be a dask.bag.Bag or a dask.dataframe.Series, got {type(texts).__name__}")


def write_conllu(tagged: Any, path: str | os.PathLike[str], *, compute: bool = True) -> Any:
    """Writes the CoNLL-U of :func:`tag` to files in folder ``path``, one per
    partition, each written by the worker that holds the partition (nothing
    passes through the client).

    The files are named ``part-00000.conllu``, ``part-00001.conllu``, ...
    (wide enough for every partition), so that their names sort in
    partition order, and hold each document's CoNLL-U as it is: joined in
    name order (``cat path/*.conllu``) they equal ``"".join(tagged.compute())``,
    ``attend tag``'s output on the same text. (A bag's ``to_textfiles``
    does not: it puts a newline between elements, a second blank line
    between documents, and names its files ``0``, ``1``, ..., ``10``, which
    sort out of order.) Each file is written under a temporary name and
    renamed when complete, so a worker that dies never leaves a partial
    ``.conllu`` (at most a ``.tmp`` file, which ``*.conllu`` does not match);
    the retried partition writes the whole file.

    Parameters
    ----------
    tagged : dask.bag.Bag or dask.dataframe.Series
        :func:`tag`'s result with ``output="conllu"``.
    path : path
        The folder, made if missing, on a file system every worker writes
        to. It must not already hold ``part-*.conllu`` files (they would mix
        with these when joined).
    compute : bool
        False: return one ``dask.delayed`` per partition instead of writing
        now (each gives its file's path).

    Returns
    -------
    The files' paths in partition order (``compute=False``: the delayed
    writes, in the same order).
    """
    if not (isinstance(tagged, db.Bag) or _is_dask_series(tagged)):
        raise TypeError(f"tagged must be the dask.bag.Bag or dask.dataframe.Series of tag(), got {type(tagged).__name__}")
    folder = os.path.abspath(os.fspath(path))
    old = sorted(glob.glob(os.path.join(glob.escape(folder), "part-*.conllu")))
    if old:
        raise FileExistsError(f"{folder} already holds {len(old)} part-*.conllu file(s) ({os.path.basename(old[0])}, ...): write to another folder or remove them")
    parts = tagged.to_delayed()
    width = max(5, len(str(len(parts) - 1)))
    paths = [os.path.join(folder, f"part-{i:0{width}d}.conllu") for i in range(len(parts))]
    writes = [delayed(_write_part, pure=False)(part, p) for part, p in zip(parts, paths)]
    return list(dask.compute(*writes)) if compute else writes


def _write_part(docs: Any, path: str) -> str:
    """Writes one partition's CoNLL-U strings to ``path``, through a
    temporary file renamed when complete."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            for doc in docs.tolist() if hasattr(docs, "tolist") else docs:
                if not isinstance(doc, str):
                    raise TypeError(f"write_conllu writes the CoNLL-U strings of tag(output='conllu'), got {type(doc).__name__}")
                f.write(doc)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _is_dask_series(x: Any) -> bool:
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask without pandas
        return False
    return isinstance(x, dd.Series)


def _chain(parts: list[Any], model: str, n_threads: int | None, max_token_chars: int | None, records: bool) -> list[Any]:
    """The graph: tag every partition (in parallel), then number each on
    from the counts of those before it (a chain of small sums, so a
    partition is finished as soon as those before it are counted)."""
    tagged = [delayed(_tag_part, pure=True)(p, model, n_threads, max_token_chars, records) for p in parts]
    offset: Any = (0, 0, 0)
    out = []
    for t in tagged:
        out.append(delayed(_finish, pure=True)(t, offset, records))
        offset = delayed(_add, pure=True)(offset, delayed(_counts, pure=True)(t))
    return out


def _tag_part(part: Any, model: str, n_threads: int | None, max_token_chars: int | None, records: bool) -> dict[str, Any]:
    """One partition tagged: per document ``(output, sentences, paragraphs,
    error)`` numbered from 1, and the pandas index when it came with one."""
    pandas = hasattr(part, "iloc")
    index = part.index if pandas else None
    results = tag_documents(part.tolist() if pandas else part, model, n_threads, max_token_chars, records)
    return {"index": index, "name": part.name if pandas else None, "docs": results}


def _counts(tagged: dict[str, Any]) -> tuple[int, int, int]:
    docs = tagged["docs"]
    return len(docs), sum(d[1] for d in docs), sum(d[2] for d in docs)


def _add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _finish(tagged: dict[str, Any], offset: tuple[int, int, int], records: bool) -> Any:
    docs, index = tagged["docs"], tagged["index"]
    first_doc, sentences, paragraphs = offset
    out: list[Any] = []
    for i, (text, n_sentences, n_paragraphs, error) in enumerate(docs):
        key = index[i] if index is not None else first_doc + i
        if error is not None:
            error = " ".join(error.replace(DOC, f"document {key}", 1).split())
            out.extend([error_record(key, error)] if records else [f"# error = {error}\n\n"])
            continue
        if records:
            out.extend(word_records(key, json.loads(text), sentences))
        else:
            out.append(renumber(text, sentences, paragraphs))
        sentences += n_sentences
        paragraphs += n_paragraphs
    if index is None:
        return out
    import pandas as pd

    if records:
        return _records_frame(out, index.dtype)
    return pd.Series(out, index=index, name=tagged["name"], dtype=object)


def _records_frame(rows: list[dict[str, Any]], doc_dtype: Any) -> Any:
    """Word records as a DataFrame: ``doc`` of the input's index type,
    whole numbers that may be missing (on error rows) as ``Int64``."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    ints = {c: "Int64" for c in ("sentence", "token", "word")}
    return frame.astype({**{c: object for c in RECORD_COLUMNS}, **ints, "doc": doc_dtype})


def predict(X: Any, model: str | os.PathLike[str], *, proba: bool = False, n_threads: int = 1) -> Any:
    """Labels (or with ``proba`` class probabilities) of series, lazily,
    with the sequence model in directory ``model``.

    ``X`` is a ``dask.array`` of equal-length series, ``(n_cases,
    n_channels, n_timepoints)`` or ``(n_cases, n_timepoints)``, chunked
    along its first axis (other axes are made whole), giving a
    ``dask.array`` of one label (or one row of probabilities) per case;
    or a ``dask.bag`` of series (2-D ``(n_channels, n_timepoints)`` or
    1-D arrays, any lengths), giving a bag of labels (arrays of labels
    per time point for a :class:`attend.SequenceLabeler`). The model is
    read here once for its classes, and once in each worker process.
    """
    n = threads(n_threads)
    model = os.path.abspath(os.fspath(model))
    est = _cache.model(model)
    if not hasattr(est, "predict_proba") or not hasattr(est, "classes_") or not hasattr(est, "n_channels_"):
        raise TypeError(f"{model} holds a {type(est).__name__}, not a sequence model")
    if isinstance(X, db.Bag):
        return X.map_partitions(_predict_items, model, proba, n)
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask.array.Array or a dask.bag.Bag, got {type(X).__name__}")
    if X.ndim not in (2, 3):
        raise ValueError(f"X must be (n_cases, n_channels, n_timepoints) or (n_cases, n_timepoints), got {X.ndim} dimensions")
    if type(est).__name__ == "SequenceLabeler":
        raise TypeError("a SequenceLabeler labels each time point: give the series as a dask.bag")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})
    if proba:
        drop = [2] if X.ndim == 3 else []
        return X.map_blocks(_predict_block, model, True, n, dtype=np.float64, chunks=(X.chunks[0], (len(est.classes_),)), drop_axis=drop)
    return X.map_blocks(_predict_block, model, False, n, dtype=est.classes_.dtype, drop_axis=list(range(1, X.ndim)))


def _predict_block(block: np.ndarray, model: str, proba: bool, n_threads: int | None) -> np.ndarray:
    est = _cache.model(model, n_threads)
    return est.predict_proba(block) if proba else est.predict(block)


def _predict_items(items: Any, model: str, proba: bool, n_threads: int | None) -> list[Any]:
    series = [np.asarray(x) for x in items]
    if not series:
        return []
    est = _cache.model(model, n_threads)
    X = [s[np.newaxis, :] if s.ndim == 1 else s for s in series]
    return list(est.predict_proba(X) if proba else est.predict(X))
