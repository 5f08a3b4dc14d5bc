"""GraphClassifier: PyG's layout, Cora as the CLI trains it, attention per edge."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest

import attend
from conftest import DATA, cli, need


def two_communities(n: int = 40):
    community = (np.arange(n) >= n // 2).astype(np.int64)
    x = np.where(((community == 1) ^ (np.arange(n) % 5 == 0))[:, None], [0.3, 0.7], [0.7, 0.3]).astype(np.float32)
    ring = np.arange(n)
    nxt = np.where(ring % (n // 2) == n // 2 - 1, ring - (n // 2 - 1), ring + 1)
    edge_index = np.stack([np.r_[ring, 0], np.r_[nxt, n // 2]])
    train = ring % 4 < 2
    val = ring % 4 == 2
    return x, edge_index, community, train, val


def test_cora_from_arrays_gives_the_clis_result(tmp_path):
    """Cora read into numpy, trained through GraphClassifier: the CLI's
    validation and test accuracy for the same seed and threads."""
    cora = need(DATA / "planetoid/cora")
    out = cli("train", "graph", "--data", str(cora), "--out", str(tmp_path / "cli"), "--seed", "42", "--threads", "2")
    best_epoch = int(re.search(r"best epoch (\d+) of", out).group(1))
    want = json.loads(cli("eval", "graph", "--model", str(tmp_path / "cli"), "--data", str(cora), "--json", "--threads", "2"))
    g = attend.read_graph(cora)
    clf = attend.GraphClassifier(random_state=42, n_threads=2)
    clf.fit(g["x"], g["edge_index"], g["y"], g["train_mask"], g["val_mask"], g["test_mask"])
    assert clf.fit_report_["best_epoch"] == best_epoch
    assert clf.fit_report_["test"]["accuracy"] == pytest.approx(want["test_accuracy"], abs=1e-6), (clf.fit_report_, want)
    assert clf.score(g["x"], g["edge_index"], g["y"], g["test_mask"]) == pytest.approx(want["test_accuracy"], abs=1e-6)
    # The CLI's model in Python predicts the same classes.
    loaded = attend.load(tmp_path / "cli")
    np.testing.assert_array_equal(loaded.predict(g["x"], g["edge_index"]), clf.predict(g["x"], g["edge_index"]))


def test_small_graph_sparse_features_attention_and_round_trips(tmp_path):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    x, e, y, train, val = two_communities()
    clf = attend.GraphClassifier(max_epochs=200, n_threads=2).fit(x, e, y, train, val)
    p = clf.predict_proba(x, e)
    assert p.shape == (40, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert clf.score(x, e, y) >= 0.8
    np.testing.assert_array_equal(clf.predict_proba(scipy_sparse.csr_matrix(x), e), p)
    # Attention per edge: each node's weights over its neighbours sum to 1 per head.
    a = clf.attention(x, e)
    target = a["edge_index"][1]
    assert len(a["layers"]) == 2 and a["layers"][0].shape[1] == 8
    for w in a["layers"]:
        sums = np.zeros((40, w.shape[1]))
        np.add.at(sums, target, w)
        np.testing.assert_allclose(sums, 1.0, atol=1e-4)
    # Both directions and self loops are there.
    pairs = set(zip(*a["edge_index"].tolist()))
    assert (0, 1) in pairs and (1, 0) in pairs and (5, 5) in pairs
    # Save for the CLI, load, pickle: the same predictions.
    clf.save(tmp_path / "m")
    assert attend.load(tmp_path / "m").predict(x, e).tolist() == clf.predict(x, e).tolist()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(x, e), p)
    # Labels that are not 0..k-1 come back as given.
    named = np.where(y == 1, "b", "a")
    assert set(attend.GraphClassifier(max_epochs=50, n_threads=2).fit(x, e, named, train, val).predict(x, e)) <= {"a", "b"}
