"""attend: self-attention models over vector sets, on the CPU.

numpy arrays in, labels out, in the conventions of scikit-learn (``fit``,
``predict``, ``predict_proba``, ``get_params``), aeon (series as
``(n_cases, n_channels, n_timepoints)`` or lists of unequal lengths) and PyG
(``edge_index``):

- :class:`SequenceClassifier`: one class per series (signals, embeddings);
- :class:`SequenceLabeler`: one class per time point;
- :class:`GraphClassifier`: one class per graph node (graph attention);
- :class:`Tagger`: raw text or CoNLL-U in, sentences with UPOS, XPOS and FEATS out;
- :func:`load`: a model directory the ``attend`` CLI (or ``save``) wrote;
- :func:`set_precision`: f32 or bf16 matrix products at inference.

Models pickle (to their checkpoint's bytes). Each estimator computes on its
own ``n_threads`` threads with the GIL released; Ctrl-C stops ``fit``.
"""

from __future__ import annotations

import os
from typing import Any

from . import _attend
from ._attend import __version__
from ._base import AttendError, NotFittedError
from .graph import GraphClassifier, read_graph
from .sequence import SequenceClassifier, SequenceLabeler, read_series
from .tagger import Sentence, Tagger, Token, Word

__all__ = [
    "AttendError",
    "GraphClassifier",
    "NotFittedError",
    "Sentence",
    "SequenceClassifier",
    "SequenceLabeler",
    "Tagger",
    "Token",
    "Word",
    "__version__",
    "get_precision",
    "load",
    "read_graph",
    "read_series",
    "set_precision",
]


def load(path: str | os.PathLike[str]) -> Any:
    """The model in directory ``path`` (written by the ``attend`` CLI or by
    ``save``), as the estimator of its kind: a :class:`Tagger`,
    :class:`SequenceClassifier` (or :class:`SequenceLabeler`) or
    :class:`GraphClassifier`, fitted."""
    handle = _attend.load(os.fspath(path))
    if isinstance(handle, _attend.TaggerHandle):
        return Tagger._from_handle(handle)
    if isinstance(handle, _attend.GraphModelHandle):
        return GraphClassifier._from_handle(handle)
    return (SequenceLabeler if handle.per_vector else SequenceClassifier)._from_handle(handle)


def set_precision(precision: str) -> None:
    """Sets the matrix products of inference (tagging; never training) for
    the whole process, as ``attend --precision`` does: ``"auto"`` (the
    default: bf16 where the CPU has AVX-512 BF16, f32 elsewhere), ``"f32"``
    (the reference) or ``"bf16"`` (inputs rounded to bfloat16, sums in f32;
    an :class:`AttendError` on a CPU without AVX-512 BF16)."""
    _attend.set_precision(precision)


def get_precision() -> tuple[str, str]:
    """The setting of :func:`set_precision` and what it runs on this CPU:
    ``("auto", "bf16")`` on a Zen 4, for example."""
    return _attend.get_precision()
