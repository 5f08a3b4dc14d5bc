"""Graph node classification in PyG's layout: node features ``x``
``(n_nodes, n_features)`` (dense, or a scipy sparse matrix), ``edge_index``
``(2, n_edges)`` (source row, target row), labels ``y`` and boolean masks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import _attend
from ._base import BaseEstimator, ClassifierMixin, as_numbers, check_fitted, estimator_settings, params_of, progress, seed, threads

# `attention_score` is the CLI's `--score` (`score` is the estimator's accuracy method).
MODEL_KEYS = (
    "attention_score", "layers", "heads", "hidden", "output_heads", "dropout", "shared_input_dropout", "attention_dropout",
    "value_dropout", "negative_slope", "residual", "self_loops", "normalize_features", "kernel",
)  # fmt: skip
RENAMED = {"attention_score": "score"}
TRAIN_KEYS = ("max_epochs", "lr", "l2", "patience", "max_minutes")


def features(x: Any) -> np.ndarray:
    """Node features as one contiguous float32 array (a sparse matrix is made dense)."""
    if hasattr(x, "toarray") and hasattr(x, "nnz"):
        x = x.toarray()
    arr = as_numbers(x, "X")
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_nodes, n_features), got shape {arr.shape}")
    return arr


def edges(edge_index: Any) -> np.ndarray:
    e = np.asarray(edge_index)
    if e.dtype.kind not in "iu":
        if e.dtype.kind == "f" and e.size and np.all(e == np.round(e)):
            e = e.astype(np.int64)
        elif e.size:
            raise ValueError(f"edge_index must hold integer node ids, got {e.dtype}")
    if e.ndim != 2 or e.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, n_edges) as in PyG, got {e.shape}")
    return np.ascontiguousarray(e, dtype=np.int64)


def _labelled(y: np.ndarray) -> np.ndarray:
    """Nodes with a label: numeric labels below 0 (PyG's -1) mark none."""
    return y >= 0 if y.dtype.kind in "iuf" else np.ones(len(y), dtype=bool)


def _mask(mask: Any, n: int, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == bool:
        if m.shape != (n,):
            raise ValueError(f"{name} must be a boolean array of {n} entries (one per node), got shape {m.shape}")
        return np.flatnonzero(m)
    if m.dtype.kind in "iu" and m.ndim == 1:
        if m.size and (m.min() < 0 or m.max() >= n):
            raise ValueError(f"{name} names a node outside 0..{n}")
        return np.sort(m)
    raise ValueError(f"{name} must be a boolean mask or an array of node ids, got {m.dtype}")


class GraphClassifier(ClassifierMixin, BaseEstimator):
    """Graph attention (GAT) over node features: each node attends to its
    neighbours. Trained on the nodes of ``train_mask``, the epoch chosen on
    ``val_mask``; ``predict`` and ``predict_proba`` give every node.

    Parameters
    ----------
    attention_score, layers, heads, hidden, output_heads, dropout, shared_input_dropout, attention_dropout, value_dropout, negative_slope, residual, self_loops, normalize_features, kernel
        The model, as ``attend train graph`` flags of the same names.
    max_epochs, lr, l2, patience, max_minutes
        Training, as the CLI's flags.
    random_state : int, RandomState or None
        The seed (the CLI's ``--seed``).
    n_threads : int or None
        Threads for this estimator (None: ``RAYON_NUM_THREADS``, else all cores).
    verbose : int
        Log each epoch to the ``attend`` logger.

    Attributes
    ----------
    classes_ : ndarray
    fit_report_ : dict
        Validation and test scores of the kept epoch.
    """

    def __init__(
        self,
        *,
        attention_score: str = "additive",
        layers: int = 2,
        heads: int = 8,
        hidden: int = 8,
        output_heads: int = 1,
        dropout: float = 0.6,
        shared_input_dropout: bool = False,
        attention_dropout: float = 0.6,
        value_dropout: float = 0.6,
        negative_slope: float = 0.2,
        residual: bool = False,
        self_loops: bool = True,
        normalize_features: bool = True,
        kernel: str = "fused",
        max_epochs: int = 5000,
        lr: float = 0.005,
        l2: float = 0.0005,
        patience: int = 100,
        max_minutes: float | None = None,
        random_state: Any = 42,
        n_threads: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.attention_score = attention_score
        self.layers = layers
        self.heads = heads
        self.hidden = hidden
        self.output_heads = output_heads
        self.dropout = dropout
        self.shared_input_dropout = shared_input_dropout
        self.attention_dropout = attention_dropout
        self.value_dropout = value_dropout
        self.negative_slope = negative_slope
        self.residual = residual
        self.self_loops = self_loops
        self.normalize_features = normalize_features
        self.kernel = kernel
        self.max_epochs = max_epochs
        self.lr = lr
        self.l2 = l2
        self.patience = patience
        self.max_minutes = max_minutes
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    def fit(self, X: Any, edge_index: Any, y: Any, train_mask: Any = None, val_mask: Any = None, test_mask: Any = None) -> "GraphClassifier":
        """Trains on the labelled nodes of ``train_mask`` (default: every
        labelled node outside the other masks), choosing the epoch on
        ``val_mask`` (default: a fifth of the training nodes, drawn with
        ``random_state``); ``test_mask`` nodes are scored in ``fit_report_``.
        Labels below 0 (PyG's -1) mark unlabelled nodes."""
        x, e = features(X), edges(edge_index)
        n = x.shape[0]
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"y must be one label per node ({n}), got shape {y.shape}")
        known = _labelled(y)
        classes, ids = np.unique(y[known], return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y holds {len(classes)} class(es): a classifier needs at least two")
        labels = np.full(n, -1, dtype=np.int64)
        labels[known] = ids
        s = seed(self.random_state)
        test = _mask(test_mask, n, "test_mask") if test_mask is not None else np.array([], dtype=np.int64)
        val = _mask(val_mask, n, "val_mask") if val_mask is not None else None
        if train_mask is not None:
            train = _mask(train_mask, n, "train_mask")
        else:
            taken = np.zeros(n, bool)
            taken[test] = True
            if val is not None:
                taken[val] = True
            train = np.flatnonzero(known & ~taken)
        if val is None:
            order = np.random.RandomState(s).permutation(train)
            cut = max(1, len(order) // 5)
            val, train = np.sort(order[:cut]), np.sort(order[cut:])
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"{len(train)} training and {len(val)} validation nodes: both masks must select labelled nodes")
        handle, report = _attend.fit_graph(
            x, e, labels, train.tolist(), val.tolist(), test.tolist(), estimator_settings(self, "graph", (MODEL_KEYS, TRAIN_KEYS), RENAMED, s),
            threads(self.n_threads), progress(self),
        )  # fmt: skip
        self.handle_ = handle
        self.classes_ = classes
        self.n_features_in_ = x.shape[1]
        self.fit_report_ = json.loads(report)
        return self

    def predict_proba(self, X: Any, edge_index: Any) -> np.ndarray:
        """Class probabilities of every node, ``(n_nodes, n_classes)``; rows sum to 1."""
        handle = check_fitted(self)
        return handle.predict_proba(features(X), edges(edge_index), threads(self.n_threads)).astype(np.float64)

    def predict(self, X: Any, edge_index: Any) -> np.ndarray:
        """The class of every node."""
        proba = self.predict_proba(X, edge_index)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, edge_index: Any, y: Any, mask: Any = None) -> float:  # type: ignore[override]
        """Accuracy on the nodes of ``mask`` (default: every labelled node)."""
        predicted, y = self.predict(X, edge_index), np.asarray(y)
        nodes = _mask(mask, len(y), "mask") if mask is not None else np.flatnonzero(_labelled(y))
        return float(np.mean(predicted[nodes] == y[nodes]))

    def attention(self, X: Any, edge_index: Any) -> dict[str, Any]:
        """Attention per edge: ``{"edge_index": (2, n) source and target of
        the edges the model attends over (both directions, self loops),
        "layers": [array (n, heads) per layer]}``; each node's weights over
        its neighbours sum to 1 per head."""
        handle = check_fitted(self)
        pairs, layers = handle.attention(features(X), edges(edge_index), threads(self.n_threads))
        return {"edge_index": pairs, "layers": layers}

    def save(self, path: str) -> None:
        """Writes the model directory ``attend train graph`` writes."""
        check_fitted(self).save(str(path))

    @classmethod
    def _from_handle(cls, handle: Any) -> "GraphClassifier":
        est = cls(**params_of(handle.settings_json, (MODEL_KEYS, TRAIN_KEYS), RENAMED))
        est.handle_ = handle
        est.classes_ = np.arange(handle.classes)
        est.n_features_in_ = handle.feature_dim
        est.fit_report_ = None
        return est


def read_graph(path: str) -> dict[str, np.ndarray]:
    """A graph directory as ``attend train graph --data`` reads it (Planetoid
    text files), as arrays: ``x``, ``edge_index``, ``y`` (-1: no label) and
    boolean ``train_mask``, ``val_mask``, ``test_mask``."""
    x, e, y, train, val, test = _attend.read_graph(str(path))
    n = x.shape[0]
    masks = {}
    for name, ids in (("train_mask", train), ("val_mask", val), ("test_mask", test)):
        m = np.zeros(n, dtype=bool)
        m[np.asarray(ids, dtype=np.int64)] = True
        masks[name] = m
    return {"x": x, "edge_index": e, "y": y, **masks}
