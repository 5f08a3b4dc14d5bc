"""Bad input raises a Python exception that names the problem; nothing panics."""

from __future__ import annotations

import numpy as np
import pytest

import attend
from test_graph import two_communities
from test_sequence import SMALL, toy


@pytest.fixture(scope="module")
def fitted():
    X, y = toy(20)
    return attend.SequenceClassifier(**{**SMALL, "epochs": 2}).fit(X, y)


def bad(exc, match, f, *args, **kwargs):
    with pytest.raises(exc, match=match) as info:
        f(*args, **kwargs)
    assert "PanicException" not in type(info.value).__name__
    return info.value


def test_bad_series_input(fitted):
    X, y = toy(20)
    new = lambda: attend.SequenceClassifier(**{**SMALL, "epochs": 2})  # noqa: E731
    nan = X.copy()
    nan[3, 0, 5] = np.nan
    bad(ValueError, r"NaN at series 3, channel 0, time point 5", new().fit, nan, y)
    inf = X.copy()
    inf[1, 0, 2] = np.inf
    bad(ValueError, r"inf at series 1", fitted.predict, inf)
    bad(ValueError, "0 sample", new().fit, np.zeros((0, 1, 5)), [])
    bad(ValueError, "no series", new().fit, [], [])
    bad(ValueError, "0 feature", new().fit, np.zeros((4, 0)), [0, 1, 0, 1])
    bad(ValueError, "series 1 has length 0", fitted.predict, [np.ones((1, 4)), np.ones((1, 0))])
    bad(ValueError, "y has 19 labels, but X has 20 series", new().fit, X, y[:19])
    bad(ValueError, "one class only", new().fit, X, ["a"] * 20)
    bad(ValueError, "strings", new().fit, np.array([["a", "b"]] * 20), y)
    bad(TypeError, "must hold numbers", new().fit, np.array([[{}, 1.0]] * 20, dtype=object), y)
    bad(ValueError, "channels", fitted.predict, np.ones((2, 3, 10)))
    bad(ValueError, "2-D", new().fit, [np.ones((1, 2, 3))], ["a"])
    bad(ValueError, "n_threads", attend.SequenceClassifier(n_threads=0).fit, X, y)
    bad(attend.AttendError, "d_model .* multiple of heads", attend.SequenceClassifier(d_model=10, heads=4).fit, X, y)


def test_bad_graph_input():
    x, e, y, train, val = two_communities()
    g = attend.GraphClassifier(max_epochs=5)
    bad(ValueError, r"edge_index\[:, 2\] = \(2, 99\) names a node outside 0..40", g.fit, x, np.c_[e[:, :2], [2, 99]], y, train, val)
    bad(ValueError, "names a node outside", g.fit, x, np.c_[e, [-1, 0]], y, train, val)
    bad(ValueError, r"shape \(2, n_edges\)", g.fit, x, e.T, y, train, val)
    bad(ValueError, "integer node ids", g.fit, x, e + 0.5, y, train, val)
    bad(ValueError, "one label per node", g.fit, x, e, y[:10], train, val)
    bad(ValueError, "boolean array of 40", g.fit, x, e, y, train[:5], val)
    nan = x.copy()
    nan[4, 1] = np.nan
    bad(ValueError, "NaN at node 4, feature 1", g.fit, nan, e, y, train, val)
    bad(attend.NotFittedError, "not fitted", g.predict, x, e)


def test_bad_model_directories(tmp_path, fitted):
    bad(FileNotFoundError, "no such model directory", attend.load, tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    bad(FileNotFoundError, "not an attend model directory", attend.load, tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    bad(attend.AttendError, "config.json", attend.load, tmp_path / "junk")
    # A model of another kind where a sequence model is read: its kind is named.
    fitted.save(tmp_path / "seq")
    (tmp_path / "seq" / "model.safetensors").write_bytes(b"garbage")
    bad(attend.AttendError, "model.safetensors", attend.load, tmp_path / "seq")
    fitted.save(tmp_path / "seg")
    cfg = (tmp_path / "seg" / "config.json").read_text().replace('"kind":"sequence"', '"kind":"segmenter"').replace('"kind": "sequence"', '"kind": "segmenter"')
    (tmp_path / "seg" / "config.json").write_text(cfg)
    bad(attend.AttendError, '"segmenter" model', attend.load, tmp_path / "seg")
