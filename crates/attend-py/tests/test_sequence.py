"""SequenceClassifier and SequenceLabeler: aeon's layouts, the CLI's
results and model format, determinism, pickling."""

from __future__ import annotations

import inspect
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

import attend
from attend import _attend
from attend.sequence import ADAPTIVE, RENAMED
from conftest import DATA, cli, read_ts

SMALL = dict(d_model=16, heads=2, ff_dim=32, epochs=30, warmup_steps=10, n_threads=2)


def toy(n: int = 40, length: int = 20, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class "up" series rise, "down" series fall, with noise."""
    rng = np.random.RandomState(seed)
    y = np.array(["up", "down"] * (n // 2))
    X = rng.randn(n, channels, length) * 0.3
    X += np.where(y == "up", 1.0, -1.0)[:, None, None] * np.linspace(-1, 1, length)
    return X, y


@pytest.mark.parametrize(
    "cls, kind, renamed",
    [
        (attend.SequenceClassifier, "sequence", {"batch_vectors": "batch_tokens"}),
        (attend.SequenceLabeler, "sequence", {"batch_vectors": "batch_tokens"}),
        (attend.GraphClassifier, "graph", {"attention_score": "score"}),
        (attend.Tagger, "tagger", {}),
    ],
)
def test_constructor_defaults_are_the_clis(cls, kind, renamed):
    """Every setting is an argument with the CLI's default (its settings
    types are the source: a default changed there fails here)."""
    cli_defaults = json.loads(_attend.default_settings(kind))
    table = {**cli_defaults["model"], **cli_defaults["train"]}
    sig = inspect.signature(cls.__init__).parameters
    for name, p in sig.items():
        if name in ("self", "random_state", "n_threads", "verbose", "segmenter", "segmenter_settings"):
            continue
        key = renamed.get(name, name)
        assert key in table, f"{cls.__name__}({name}) is no {kind} setting"
        if kind == "sequence" and name in ADAPTIVE:
            assert p.default is None, f"{cls.__name__}({name}) is chosen from the data: its default is None"
            continue
        assert p.default == table[key], f"{cls.__name__}({name}={p.default!r}), the CLI's default is {table[key]!r}"
    assert sig["random_state"].default == table["seed"]
    set_from_data = {"dims", "missing_indicators", "target", "outputs", "feature_dim", "classes", "words", "chars", "tags",
                     "xpos_tags", "feats_tags", "seed", "word_dropout", "dev_fraction", "crop", "random_crop", "batch_tokens"}  # fmt: skip
    exposed = {renamed.get(n, n) for n in sig}
    missing = set(table) - exposed - set_from_data
    assert not missing, f"{cls.__name__} lacks settings {sorted(missing)}"


def test_ts_set_gives_the_clis_accuracy(tmp_path):
    """A UEA set read into numpy: fit(X, y).score(X_test, y_test) equals
    `attend train sequence` with the same settings, seed and threads; each
    front end reads the other's model directory with equal predictions."""
    train, test = DATA / "uea/ItalyPowerDemand/ItalyPowerDemand_TRAIN.ts", DATA / "uea/ItalyPowerDemand/ItalyPowerDemand_TEST.ts"
    X, y = read_ts(train)
    Xt, yt = read_ts(test)
    # attend's own reader gives the same arrays.
    Xr, yr = attend.read_series(train)
    np.testing.assert_array_equal(Xr, X.astype(np.float32))
    np.testing.assert_array_equal(yr, y)
    flags = ["--epochs", "30", "--d-model", "32", "--ff-dim", "64", "--seed", "3", "--threads", "2"]
    cli("train", "sequence", "--train", str(train), "--test", str(test), "--out", str(tmp_path / "cli"), *flags)
    cli_score = json.loads((tmp_path / "cli" / "train_report.json").read_text())["run"]["test_score"]
    clf = attend.SequenceClassifier(epochs=30, d_model=32, ff_dim=64, random_state=3, n_threads=2).fit(X, y)
    assert clf.score(Xt, yt) == pytest.approx(cli_score, abs=1e-9)
    # The CLI's model in Python, Python's model in the CLI.
    loaded = attend.load(tmp_path / "cli")
    assert isinstance(loaded, attend.SequenceClassifier)
    assert loaded.score(Xt, yt) == pytest.approx(cli_score, abs=1e-9)
    np.testing.assert_array_equal(loaded.predict(Xt), clf.predict(Xt))
    clf.save(tmp_path / "py")
    out = cli("eval", "--model", str(tmp_path / "py"), "--input", str(test), "--json", "--threads", "2")
    assert json.loads(out)["accuracy"] == pytest.approx(cli_score, abs=1e-9)


def test_settings_not_given_are_chosen_from_the_data_as_the_cli_chooses():
    """None arguments are decided at fit time from the data's shape (and
    reported); given ones are kept; the loaded model shows what was used."""
    assert {RENAMED.get(k, k) for k in ADAPTIVE} == set(_attend.adaptive_keys()), "the package's list is the library's"
    X, y = toy(40, 300)
    clf = attend.SequenceClassifier(d_model=16, heads=2, ff_dim=32, epochs=3, n_threads=2).fit(X, y)
    chosen = {c["key"]: c["value"] for c in clf.fit_report_["adaptive"]}
    assert "epochs" not in chosen, "given"
    # 300 steps: patches of 4 (75 inputs), a 25-wide stem window, nothing held out.
    assert (chosen["patch"], chosen["stem_kernel"], chosen["sequence_norm"], chosen["dev_fraction"]) == (4, 25, True, 0.0)
    assert (chosen["members"], chosen["conv_members"]) == (6, 2), "a small set of short runs: six networks, two convolutional"
    assert chosen["conv_pool"] == 4, "the convolutional ones pool over the whole patch of 4"
    assert all(c["why"] for c in clf.fit_report_["adaptive"])
    assert clf.get_params()["patch"] is None, "the estimator's parameters stay as given (scikit-learn's rule)"
    saved = json.loads(clf.handle_.settings_json)
    assert (saved["model"]["patch"], saved["train"]["epochs"], saved["train"]["lr"]) == (4, 3, pytest.approx(0.003))
    fixed = attend.SequenceClassifier(d_model=16, heads=2, ff_dim=32, epochs=3, n_threads=2, patch=2, stem=0).fit(X, y)
    chosen = {c["key"] for c in fixed.fit_report_["adaptive"]}
    assert not chosen & {"patch", "stem", "stem_kernel", "epochs"}, chosen
    assert json.loads(fixed.handle_.settings_json)["model"]["patch"] == 2
    # No stem: attention only, and asking for convolutional members is refused by name.
    assert json.loads(fixed.handle_.settings_json)["model"]["conv_members"] == 0
    with pytest.raises(ValueError, match="conv_members"):
        attend.SequenceClassifier(d_model=16, heads=2, ff_dim=32, epochs=1, stem=0, conv_members=1).fit(X, y)


def test_layouts_unequal_lengths_and_channels():
    X, y = toy(40, 24, channels=2)
    clf = attend.SequenceClassifier(**SMALL).fit(X, y)
    assert clf.n_channels_ == 2 and list(clf.classes_) == ["down", "up"]
    # The same series as a list of 2-D arrays: the same predictions.
    as_list = [x for x in X]
    np.testing.assert_array_equal(clf.predict(as_list), clf.predict(X))
    # Unequal lengths, no padding.
    ragged = [x[:, : 12 + i % 10] for i, x in enumerate(X)]
    clf2 = attend.SequenceClassifier(**SMALL).fit(ragged, y)
    assert clf2.score(ragged, y) >= 0.9
    # Univariate 2-D and 1-D list entries.
    Xu, yu = toy(40, 20)
    u = attend.SequenceClassifier(**SMALL).fit(Xu[:, 0, :], yu)
    np.testing.assert_array_equal(u.predict([x[0] for x in Xu]), u.predict(Xu[:, 0, :]))
    np.testing.assert_array_equal(u.predict(Xu), u.predict(Xu[:, 0, :]))


def test_numeric_labels_probabilities_and_determinism():
    X, y = toy(40)
    y_num = np.where(y == "up", 7, 3)
    a = attend.SequenceClassifier(**SMALL, random_state=5).fit(X, y_num)
    b = attend.SequenceClassifier(**SMALL, random_state=5).fit(X, y_num)
    assert a.classes_.tolist() == [3, 7]
    assert set(a.predict(X)) <= {3, 7}
    p = a.predict_proba(X)
    assert p.shape == (40, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a.classes_[p.argmax(axis=1)], a.predict(X))
    np.testing.assert_array_equal(p, b.predict_proba(X))
    c = attend.SequenceClassifier(**SMALL, random_state=6).fit(X, y_num)
    assert not np.array_equal(p, c.predict_proba(X)), "another seed, another model"


def test_conversions_are_accepted():
    """Non-contiguous, big-endian, float64 and integer arrays give the
    predictions of the contiguous float32 array."""
    X, y = toy(30)
    clf = attend.SequenceClassifier(**SMALL).fit(X, y)
    ref = clf.predict_proba(X.astype(np.float32))
    np.testing.assert_array_equal(clf.predict_proba(X.astype(">f8")), ref)
    wide = np.zeros((30, 1, 40))
    wide[:, :, ::2] = X
    np.testing.assert_array_equal(clf.predict_proba(wide[:, :, ::2]), ref)
    ints = np.round(X * 10).astype(np.int32)
    np.testing.assert_array_equal(clf.predict_proba(ints), clf.predict_proba(ints.astype(np.float32)))


def test_pickle_round_trip_in_another_process(tmp_path):
    X, y = toy(40)
    clf = attend.SequenceClassifier(**SMALL).fit(X, y)
    blob = tmp_path / "clf.pkl"
    blob.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np\n"
        f"clf = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, clf.predict_proba(np.load({str(tmp_path / 'X.npy')!r})))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), clf.predict_proba(X))
    again = pickle.loads(pickle.dumps(clf))
    assert again.get_params() == clf.get_params()
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))


def test_attention_rows_sum_to_one():
    X, y = toy(20, 16)
    clf = attend.SequenceClassifier(**SMALL).fit(X, y)
    a = clf.attention(X[:1])
    assert len(a["layers"]) == 2 and len(a["inputs"]) == 16
    for layer in a["layers"]:
        assert layer.shape == (2, 16, 16)
        np.testing.assert_allclose(layer.sum(axis=-1), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="one series"):
        clf.attention(X[:2])


def test_sequence_labeler_labels_every_time_point(tmp_path):
    """One label per time point: "hi" where the value is above 0."""
    rng = np.random.RandomState(1)
    X = [rng.randn(1, 10 + i % 7) for i in range(60)]
    y = [np.where(x[0] > 0, "hi", "lo") for x in X]
    lab = attend.SequenceLabeler(**{**SMALL, "epochs": 60}).fit(X, y)
    predicted = lab.predict(X)
    assert [len(p) for p in predicted] == [x.shape[1] for x in X]
    assert lab.score(X, y) >= 0.9
    proba = lab.predict_proba(X[:3])
    assert [p.shape for p in proba] == [(x.shape[1], 2) for x in X[:3]]
    lab.save(tmp_path / "m")
    again = attend.load(tmp_path / "m")
    assert isinstance(again, attend.SequenceLabeler)
    for a, b in zip(again.predict(X[:5]), predicted[:5]):
        np.testing.assert_array_equal(a, b)


def test_verbose_logs_epochs(caplog):
    X, y = toy(20)
    # With held-out dev data, every epoch is scored and logged.
    with caplog.at_level("INFO", logger="attend"):
        attend.SequenceClassifier(**{**SMALL, "epochs": 3, "dev_fraction": 0.2}, verbose=1).fit(X, y)
    epochs = [r for r in caplog.records if "epoch" in r.getMessage()]
    assert len(epochs) == 3, [r.getMessage() for r in caplog.records]
    # Without (20 series: none held out), every 10th epoch and the last.
    caplog.clear()
    with caplog.at_level("INFO", logger="attend"):
        attend.SequenceClassifier(**{**SMALL, "epochs": 12}, verbose=1).fit(X, y)
    epochs = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert [m.split(",")[0] for m in epochs] == ["SequenceClassifier: epoch 10", "SequenceClassifier: epoch 12"], epochs
