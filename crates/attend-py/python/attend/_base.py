"""What every estimator shares: the scikit-learn contract (with or without
scikit-learn installed), input checks that name the problem, the thread
count and progress through :mod:`logging`."""

from __future__ import annotations

import inspect
import json
import logging
import sys
from typing import Any, Callable

import numpy as np

from . import _attend

logger = logging.getLogger("attend")

try:  # scikit-learn is optional: with it, estimators are its own kind.
    from sklearn.base import BaseEstimator as _SkBase
    from sklearn.base import ClassifierMixin as _SkClassifier
    from sklearn.exceptions import NotFittedError as _SkNotFitted

    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised in a numpy-only venv
    HAVE_SKLEARN = False

    class _SkNotFitted(ValueError, AttributeError):  # type: ignore[no-redef]
        pass

    class _SkBase:  # type: ignore[no-redef]
        """get_params / set_params by the constructor's arguments."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params: Any) -> "_SkBase":
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; valid: {', '.join(valid)}")
                setattr(self, key, value)
            return self

        def __repr__(self) -> str:
            sig = inspect.signature(type(self).__init__)
            changed = [
                f"{k}={v!r}"
                for k, v in self.get_params().items()
                if sig.parameters[k].default is inspect.Parameter.empty or sig.parameters[k].default != v
            ]
            return f"{type(self).__name__}({', '.join(changed)})"

    class _SkClassifier:  # type: ignore[no-redef]
        _estimator_type = "classifier"

        def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
            predicted = self.predict(X)  # type: ignore[attr-defined]
            right = np.asarray(predicted) == np.asarray(y)
            if sample_weight is None:
                return float(np.mean(right))
            w = np.asarray(sample_weight, dtype=float)
            return float(np.sum(w * right) / np.sum(w))


class NotFittedError(_SkNotFitted):
    """Raised when a model is used before ``fit`` (a ``ValueError`` and
    ``AttributeError``; scikit-learn's ``NotFittedError`` when it is installed)."""


AttendError = _attend.AttendError

BaseEstimator = _SkBase
ClassifierMixin = _SkClassifier


def check_fitted(est: Any) -> Any:
    handle = getattr(est, "handle_", None)
    if handle is None:
        raise NotFittedError(
            f"This {type(est).__name__} instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator."
        )
    return handle


def as_numbers(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a float32 array (one conversion: non-contiguous,
    big-endian, integer or object arrays of numbers are accepted)."""
    if hasattr(X, "toarray") and hasattr(X, "nnz") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix, but dense data is required (sparse input is not supported): use {name}.toarray()")
    arr = np.asarray(X)
    if arr.dtype.kind in "USV":
        raise ValueError(f"{name} must hold numbers, got an array of {arr.dtype} (strings)")
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must hold real numbers")
    if arr.dtype.kind not in "fiub":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name} must hold numbers: {e}") from e
    return np.ascontiguousarray(arr, dtype=np.float32)


def threads(n_threads: int | None) -> int | None:
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return int(n_threads)


def seed(random_state: Any) -> int:
    """A seed from scikit-learn's ``random_state``: an int as it is, a
    ``RandomState`` draws one, None draws one from numpy's global state."""
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) and random_state >= 0:
        return int(random_state)
    raise ValueError(f"random_state must be a non-negative int, a RandomState or None, got {random_state!r}")


def progress(est: Any) -> Callable[[str], None] | None:
    """The callback that logs each finished epoch to the ``attend`` logger
    (with ``verbose``; a handler to stderr is added if none is set)."""
    if not getattr(est, "verbose", 0):
        return None
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    name = type(est).__name__

    def log(line: str) -> None:
        e = json.loads(line)
        dev = f", dev {100 * e['dev_accuracy']:.2f}%" if e.get("dev_accuracy") is not None else ""
        logger.info("%s: epoch %d, loss %.4f%s%s", name, e["epoch"], e["train_loss"], dev, " (kept)" if e.get("improved") else "")

    return log


def defaults(kind: str) -> dict[str, dict[str, Any]]:
    """The CLI's default settings of a kind of model."""
    return json.loads(_attend.default_settings(kind))


def settings_json(kind: str, model: dict[str, Any], train: dict[str, Any]) -> str:
    """Every setting of ``kind`` (the CLI's defaults) with ``model`` and ``train`` laid over."""
    s = defaults(kind)
    for table, given in (("model", model), ("train", train)):
        unknown = set(given) - set(s[table])
        if unknown:
            raise ValueError(f"unknown {kind} settings: {sorted(unknown)}")
        s[table].update(given)
    return json.dumps(s)


def estimator_settings(
    est: Any,
    kind: str,
    keys: tuple[tuple[str, ...], tuple[str, ...]],
    renamed: dict[str, str],
    seed_value: int,
    unset: tuple[str, ...] = (),
) -> str:
    """The settings JSON of ``est``: its ``(model, train)`` constructor
    arguments under their settings names (``renamed``), with ``seed_value``;
    arguments of ``unset`` that are None are left out (the CLI's defaults)."""
    model_keys, train_keys = keys

    def given(k: str) -> bool:
        return not (k in unset and getattr(est, k) is None)

    model = {renamed.get(k, k): getattr(est, k) for k in model_keys if given(k)}
    train = {renamed.get(k, k): getattr(est, k) for k in train_keys if given(k)}
    train["seed"] = seed_value
    return settings_json(kind, model, train)


def params_of(saved_json: str, keys: tuple[tuple[str, ...], tuple[str, ...]], renamed: dict[str, str]) -> dict[str, Any]:
    """Constructor arguments from a saved model's settings (the inverse of
    :func:`estimator_settings`; the seed becomes ``random_state``)."""
    s = json.loads(saved_json)
    model_keys, train_keys = keys
    # A key the saved model does not have (written before it existed)
    # leaves the constructor's default.
    params = {k: s["model"][renamed.get(k, k)] for k in model_keys if renamed.get(k, k) in s["model"]}
    params.update({k: s["train"][renamed.get(k, k)] for k in train_keys})
    params["random_state"] = s["train"]["seed"]
    return params


def labels_of(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes_, ids)`` of a 1-D label array of ``n`` entries."""
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        if HAVE_SKLEARN:
            import warnings

            from sklearn.exceptions import DataConversionWarning

            warnings.warn("A column-vector y was passed when a 1d array was expected.", DataConversionWarning, stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be one label per series (a 1-D array), got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"y has {len(y)} labels, but X has {n} series")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity")
        if np.any(y != np.round(y)):
            raise ValueError("Unknown label type: continuous y (numbers that are not whole); a classifier needs classes")
    if y.dtype.kind == "O":
        kinds = {type(v) for v in y}
        if len(kinds) > 1 and not all(issubclass(k, (int, float, np.number)) for k in kinds):
            raise ValueError(f"Unknown label type: y mixes {sorted(k.__name__ for k in kinds)}")
    classes, ids = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y holds one class only ({classes[0]!r}): a classifier needs at least two classes")
    return classes, ids.astype(np.int64).ravel()
