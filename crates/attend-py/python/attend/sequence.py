"""Models over vector sequences in aeon's data conventions: one label per
series (:class:`SequenceClassifier`) or one per time point
(:class:`SequenceLabeler`)."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import _attend
from ._base import (
    BaseEstimator,
    ClassifierMixin,
    as_numbers,
    check_fitted,
    estimator_settings,
    labels_of,
    params_of,
    progress,
    seed,
    threads,
)

# Constructor arguments that are settings of the model (`[model]`) and of
# training (`[train]`), under the CLI's flag names (`--d-model` is
# `d_model`); `random_state` is the CLI's `--seed`, `batch_vectors` its
# `--batch-vectors` (the settings file's `batch_tokens`).
MODEL_KEYS = (
    "encoder", "d_model", "heads", "layers", "ff_dim", "dropout", "input_dropout", "attention_dropout",
    "position", "max_positions", "window", "attention_kernel", "pooling", "patch", "sequence_norm", "stem",
    "stem_kernel", "stem_layers", "stem_deep_kernel", "members", "conv_members", "conv_pool",
)  # fmt: skip
TRAIN_KEYS = (
    "epochs", "max_minutes", "lr", "warmup_steps", "min_lr_ratio", "weight_decay", "beta1", "beta2", "clip",
    "batch_vectors", "label_smoothing", "patience", "dev_fraction", "crop", "random_crop",
)  # fmt: skip
RENAMED = {"batch_vectors": "batch_tokens"}
# Arguments whose default (None) is chosen from the training data at fit
# time, as `attend train sequence` chooses them (one label per series; with
# one per time point, the CLI's fixed defaults): attend's `auto` rules.
ADAPTIVE = (
    "patch", "stem", "stem_kernel", "sequence_norm", "members", "conv_members", "conv_pool", "dev_fraction",
    "batch_vectors", "epochs", "warmup_steps", "lr",
)  # fmt: skip


def series(X: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """aeon's collections as one buffer: ``(values, lengths, channels)``.

    ``X`` is a 3-D array ``(n_cases, n_channels, n_timepoints)``, a 2-D
    array ``(n_cases, n_timepoints)`` of univariate series, or a list of
    2-D arrays ``(n_channels, n_timepoints_i)`` (1-D: univariate) of
    unequal lengths. The values are copied once, into one float32 buffer.
    """
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X holds no series (an empty list)")
        arrays = []
        for i, x in enumerate(X):
            a = as_numbers(x, f"X[{i}]")
            if a.ndim == 1:
                a = a[None, :]
            if a.ndim != 2:
                raise ValueError(f"X[{i}] must be 2-D (n_channels, n_timepoints), got shape {a.shape}")
            arrays.append(a)
        dims = arrays[0].shape[0]
        for i, a in enumerate(arrays):
            if a.shape[0] != dims:
                raise ValueError(f"X[{i}] has {a.shape[0]} channels, X[0] has {dims}: all series need the same channels")
        lengths = np.array([a.shape[1] for a in arrays], dtype=np.int64)
        values = np.concatenate([a.reshape(-1) for a in arrays])
        return values, lengths, dims
    arr = as_numbers(X)
    shape = arr.shape
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise ValueError(
            f"X must be a 3-D array (n_cases, n_channels, n_timepoints), a 2-D array (n_cases, n_timepoints) "
            f"or a list of 2-D arrays, got shape {shape}. Reshape your data: X.reshape(1, -1) for one univariate series"
        )
    n, dims, length = arr.shape
    if n == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required: X holds no series")
    if dims == 0 or length == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required: "
            "series need at least one channel and one time point"
        )
    return arr.reshape(-1), np.full(n, length, dtype=np.int64), dims


class _SequenceBase(BaseEstimator):
    _per_vector = False

    def __init__(
        self,
        *,
        encoder: str = "attention",
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff_dim: int = 128,
        dropout: float = 0.1,
        input_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        position: str = "rope",
        max_positions: int = 4096,
        window: int | None = None,
        attention_kernel: str = "fused",
        pooling: str = "mean",
        patch: int | None = None,
        sequence_norm: bool | None = None,
        stem: int | None = None,
        stem_kernel: int | None = None,
        stem_layers: int = 1,
        stem_deep_kernel: int = 5,
        members: int | None = None,
        conv_members: int | None = None,
        conv_pool: int | None = None,
        epochs: int | None = None,
        max_minutes: float | None = None,
        lr: float | None = None,
        warmup_steps: int | None = None,
        min_lr_ratio: float = 0.02,
        weight_decay: float = 0.05,
        beta1: float = 0.9,
        beta2: float = 0.98,
        clip: float = 1.0,
        batch_vectors: int | None = None,
        label_smoothing: float = 0.0,
        patience: int | None = None,
        dev_fraction: float | None = None,
        crop: int = 0,
        random_crop: float = 1.0,
        random_state: Any = 42,
        n_threads: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.encoder = encoder
        self.d_model = d_model
        self.heads = heads
        self.layers = layers
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.attention_dropout = attention_dropout
        self.position = position
        self.max_positions = max_positions
        self.window = window
        self.attention_kernel = attention_kernel
        self.pooling = pooling
        self.patch = patch
        self.sequence_norm = sequence_norm
        self.stem = stem
        self.stem_kernel = stem_kernel
        self.stem_layers = stem_layers
        self.stem_deep_kernel = stem_deep_kernel
        self.members = members
        self.conv_members = conv_members
        self.conv_pool = conv_pool
        self.epochs = epochs
        self.max_minutes = max_minutes
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.min_lr_ratio = min_lr_ratio
        self.weight_decay = weight_decay
        self.beta1 = beta1
        self.beta2 = beta2
        self.clip = clip
        self.batch_vectors = batch_vectors
        self.label_smoothing = label_smoothing
        self.patience = patience
        self.dev_fraction = dev_fraction
        self.crop = crop
        self.random_crop = random_crop
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    def _settings(self) -> str:
        return estimator_settings(self, "sequence", (MODEL_KEYS, TRAIN_KEYS), RENAMED, seed(self.random_state), unset=ADAPTIVE)

    def _given(self) -> list[str]:
        """The adaptive settings given (not None), by their settings names."""
        return [RENAMED.get(k, k) for k in ADAPTIVE if getattr(self, k) is not None]

    def _fit(self, data: tuple[np.ndarray, np.ndarray, int], ids: np.ndarray, classes: np.ndarray) -> None:
        values, lengths, dims = data
        handle, report = _attend.fit_sequence(
            values, lengths, dims, ids, [str(c) for c in classes], self._per_vector, self._settings(), self._given(),
            threads(self.n_threads), progress(self),
        )  # fmt: skip
        self.handle_ = handle
        self.classes_ = classes
        self.n_channels_ = dims
        # scikit-learn's name for the width of a 2-D X: here the time points
        # of equal-length series (informational: any length can be predicted).
        self.n_features_in_ = int(lengths[0]) if dims == 1 and np.all(lengths == lengths[0]) else dims
        self.fit_report_ = json.loads(report)

    def _run(self, method: str, X: Any) -> tuple[Any, np.ndarray]:
        handle = check_fitted(self)
        values, lengths, dims = series(X)
        return getattr(handle, method)(values, lengths, dims, threads(self.n_threads)), lengths

    def attention(self, X: Any) -> dict[str, Any]:
        """Attention weights for one series (``X`` as for ``predict``, one
        case): ``{"layers": [array (heads, inputs, inputs) per layer],
        "inputs": [names of the inputs]}``, each row summing to 1 (the data
        the CLI's heatmaps draw)."""
        (layers, names), lengths = self._run("attention", X)
        if len(lengths) != 1:
            raise ValueError(f"attention is for one series; X holds {len(lengths)}")
        return {"layers": layers, "inputs": names}

    def save(self, path: str) -> None:
        """Writes the model directory ``attend`` writes (``attend predict
        --model`` reads it); class names are saved as text."""
        check_fitted(self).save(str(path))

    @classmethod
    def _from_handle(cls, handle: Any) -> "_SequenceBase":
        params = params_of(handle.settings_json, (MODEL_KEYS, TRAIN_KEYS), RENAMED)
        est = cls(**params)
        est.handle_ = handle
        est.classes_ = np.array(handle.classes)
        est.n_channels_ = handle.dims
        est.fit_report_ = None
        return est

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags


class SequenceClassifier(ClassifierMixin, _SequenceBase):
    """One class per series, by stacked self-attention over its time points.

    ``X`` follows aeon: a 3-D array ``(n_cases, n_channels,
    n_timepoints)``, a 2-D array ``(n_cases, n_timepoints)`` for univariate
    series, or a list of 2-D arrays ``(n_channels, n_timepoints_i)`` of
    unequal lengths (no padding needed). ``y`` holds any labels.

    Parameters
    ----------
    encoder, d_model, heads, layers, ff_dim, dropout, input_dropout, attention_dropout, position, max_positions, window, attention_kernel
        The encoder, as ``attend train sequence`` flags of the same names
        (``window``: truncated attention over this many time points each
        side; None: whole series; ``input_dropout``: dropout on the series'
        values before the encoder's projection, 0 so that they keep their
        scale between training and prediction).
    pooling : {"mean", "summary"}
        How the outputs become one vector per series.
    patch : int or None
        Consecutive time points joined into one input (shortens long series).
    sequence_norm : bool or None
        Scale each series by its own statistics (and give them as inputs).
    stem, stem_kernel : int or None
        A convolutional stem of ``stem`` features over ``stem_kernel`` steps (0: off).
    stem_layers : int
        Convolutional layers in the stem (with ``stem`` > 0); each after the first runs over
        ``stem_deep_kernel`` steps of the previous one's features (then
        layer norm and GELU).
    stem_deep_kernel : int
        Width of those further layers' windows, odd.
    members : int or None
        An ensemble of this many networks trained side by side (in parallel
        with several threads); predictions average their probabilities.
        None: below 1,000 series 6, or 3 where each network's run is long
        (more than 6.25 M vector passes); else 1.
    conv_members : int or None
        Of the members, how many are convolutional (a stem of at least 3
        layers, no attention); with both kinds, each kind has half the say.
    conv_pool : int or None
        A convolutional network (member, or ``layers=0``) keeps the maximum
        of each ``conv_pool`` time points after its stem's first layer (a
        divisor of ``patch``); its deeper layers run over that many times
        fewer steps. None: the largest divisor of the patch up to 4.
    epochs, max_minutes, lr, warmup_steps, min_lr_ratio, weight_decay, beta1, beta2, clip, batch_vectors, label_smoothing, patience, dev_fraction, crop, random_crop
        Training, as the CLI's flags; ``dev_fraction`` of the series
        (stratified) is held out to choose the epoch (0: none, the last
        epoch is kept).

    The settings that default to None (``patch``, ``stem``,
    ``stem_kernel``, ``sequence_norm``, ``members``, ``conv_members``, ``conv_pool``, ``dev_fraction``,
    ``batch_vectors``,
    ``epochs``, ``warmup_steps``, ``lr``) are chosen from the training
    data at fit time, as ``attend train sequence`` chooses them
    (docs/sequences.md); ``fit_report_["adaptive"]`` lists each choice
    and why. A value given is kept.
    random_state : int, RandomState or None
        The seed (the CLI's ``--seed``); the same seed and ``n_threads``
        give the same model.
    n_threads : int or None
        Threads for this estimator (None: ``RAYON_NUM_THREADS``, else all cores).
    verbose : int
        Log each epoch to the ``attend`` logger.

    Attributes
    ----------
    classes_ : ndarray
        The class labels.
    n_channels_ : int
    fit_report_ : dict
        What training reported (epochs, the kept epoch, dev scores).
    """

    def fit(self, X: Any, y: Any) -> "SequenceClassifier":
        """Trains on series ``X`` with labels ``y``; returns ``self``."""
        data = series(X)
        classes, ids = labels_of(y, len(data[1]))
        self._fit(data, ids, classes)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The class of each series."""
        ids, _ = self._run("predict", X)
        return self.classes_[ids]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, ``(n_cases, n_classes)`` in ``classes_`` order; rows sum to 1."""
        proba, _ = self._run("predict_proba", X)
        return proba.astype(np.float64)


class SequenceLabeler(_SequenceBase):
    """One class per time point (the CLI's vector sequences with a label per
    vector): ``X`` as for :class:`SequenceClassifier`, ``y`` a 2-D array
    ``(n_cases, n_timepoints)`` or a list of 1-D label arrays, one per
    series. ``predict`` returns a list of label arrays, one per series.
    Parameters as for :class:`SequenceClassifier` (``pooling`` and
    ``patch`` do not apply)."""

    _per_vector = True

    def fit(self, X: Any, y: Any) -> "SequenceLabeler":
        rows = [np.asarray(r) for r in y] if isinstance(y, (list, tuple)) else list(np.asarray(y))
        flat = np.concatenate([r.reshape(-1) for r in rows]) if rows else np.array([])
        classes, ids = labels_of(flat, len(flat))
        self._fit(series(X), ids, classes)
        return self

    def predict(self, X: Any) -> list[np.ndarray]:
        ids, lengths = self._run("predict", X)
        return np.split(self.classes_[ids], np.cumsum(lengths)[:-1])

    def predict_proba(self, X: Any) -> list[np.ndarray]:
        proba, lengths = self._run("predict_proba", X)
        return np.split(proba.astype(np.float64), np.cumsum(lengths)[:-1])

    def score(self, X: Any, y: Any) -> float:
        """Accuracy over all labelled time points."""
        predicted = np.concatenate(self.predict(X))
        gold = np.concatenate([np.asarray(r).reshape(-1) for r in y])
        return float(np.mean(predicted == gold))



def read_series(path: str | os.PathLike[str]) -> tuple[np.ndarray | list[np.ndarray], np.ndarray | None]:
    """A file of series as ``attend train sequence`` reads it (UEA/UCR
    ``.ts``, ``.npz``, vector text) in aeon's layout: ``(X, y)``, ``X`` a
    3-D array ``(n_cases, n_channels, n_timepoints)`` when the series have
    equal lengths, else a list of 2-D arrays; ``y`` the labels as text
    (None when the file has none). Missing values stay NaN."""
    values, lengths, dims, labels = _attend.read_series(os.fspath(path))
    y = None if labels is None else np.array(labels)
    if len(set(lengths)) == 1:
        return values.reshape(len(lengths), dims, lengths[0]), y
    ends = np.cumsum([n * dims for n in lengths])[:-1]
    return [part.reshape(dims, n) for part, n in zip(np.split(values, ends), lengths)], y
