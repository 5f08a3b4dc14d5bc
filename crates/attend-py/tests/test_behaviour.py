"""What a Python user expects: the GIL released while attend computes,
Ctrl-C stopping fit, estimators usable from threads and forked workers."""

from __future__ import annotations

import _thread
import multiprocessing
import threading
import time

import numpy as np
import pytest

import attend
from test_sequence import SMALL, toy


@pytest.fixture(scope="module")
def fitted():
    X, y = toy(40, 64)
    return attend.SequenceClassifier(**SMALL).fit(X, y), X


def test_two_threads_predict_at_once(fitted):
    """Both threads progress while the other computes: with the GIL held,
    the Python counter below could not advance during a prediction."""
    clf, X = fitted
    big = np.repeat(X, 150, axis=0)
    want = clf.predict_proba(big)
    results, ticks = {}, []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    def work(k):
        results[k] = clf.predict_proba(big)

    t = threading.Thread(target=ticker)
    t.start()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    for k in range(2):
        np.testing.assert_array_equal(results[k], want)
    during = [x for x in ticks if start <= x <= start + elapsed]
    # Held, the GIL would allow a tick or two at the boundaries; released,
    # about one per 5 ms (a tenth of that allows for a loaded machine).
    assert len(during) >= max(4, int(elapsed / 0.005 * 0.1)), f"{len(during)} ticks in {elapsed:.2f} s: the GIL was held"


def test_ctrl_c_stops_fit_within_a_second():
    X, y = toy(200, 64)
    clf = attend.SequenceClassifier(**{**SMALL, "epochs": 100000})
    timer = threading.Timer(1.0, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    stopped = time.perf_counter() - start
    assert stopped < 2.0, f"fit stopped {stopped - 1.0:.2f} s after Ctrl-C"
    assert not hasattr(clf, "handle_")


def _predict_in_child(args):
    clf, X = args
    return clf.predict(X).tolist()


def test_forked_and_spawned_workers_do_not_hang(fitted):
    clf, X = fitted
    want = clf.predict(X).tolist()
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            got = pool.map_async(_predict_in_child, [(clf, X)] * 4).get(timeout=120)
        assert got == [want] * 4, method


def test_threads_setting_and_environment(monkeypatch, fitted):
    clf, X = fitted
    monkeypatch.setenv("RAYON_NUM_THREADS", "1")
    assert attend._attend.default_threads() == 1
    one = attend.SequenceClassifier(**{**SMALL, "n_threads": None})
    assert one.n_threads is None
    np.testing.assert_array_equal(clf.predict(X), clf.set_params(n_threads=1).predict(X))
    clf.set_params(n_threads=2)
