"""The scikit-learn contract on the univariate (2-D) path."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import attend  # noqa: E402
from test_sequence import SMALL, toy  # noqa: E402

# Checks that must fail, and why. A series model reads time points, not a
# fixed set of features: series of another length than in fit are valid
# input to predict (aeon's convention; unequal lengths are a feature), so
# predict does not refuse "a different number of features".
EXPECTED_FAILURES = {
    "check_n_features_in_after_fitting": "predict accepts series of any length (a time series model, not a fixed feature width)",
    "check_classifiers_train": "only its last step fails: predict on X.T (series of another length) is valid input, not an error",
}


def test_check_estimator_on_the_univariate_path():
    results = check_estimator(attend.SequenceClassifier(n_threads=2), expected_failed_checks=EXPECTED_FAILURES, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert xfailed == set(EXPECTED_FAILURES), "a listed failure no longer fails: take it off the list"
    assert sum(r["status"] == "passed" for r in results) >= 40


def test_check_classifiers_train_fails_only_on_other_lengths():
    """The listed failure is the length check alone: accuracy and the rest pass."""
    from sklearn.utils.estimator_checks import check_classifiers_train

    with pytest.raises(AssertionError, match="number of features in predict is different"):
        check_classifiers_train("SequenceClassifier", attend.SequenceClassifier(n_threads=2))


def test_clone_get_set_params():
    est = attend.SequenceClassifier(d_model=32, random_state=7)
    params = est.get_params()
    assert params["d_model"] == 32 and params["random_state"] == 7 and params["epochs"] is None
    c = clone(est)
    assert c is not est and c.get_params() == params
    est.set_params(d_model=16, epochs=5)
    assert (est.d_model, est.epochs) == (16, 5)
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(no_such_setting=1)
    X, y = toy(20)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        est.predict(X)
    with pytest.raises(attend.NotFittedError):
        est.predict_proba(X)
    fitted = attend.SequenceClassifier(**SMALL).fit(X, y)
    assert not hasattr(clone(fitted), "handle_"), "clone gives an unfitted copy"


def test_pipeline_and_grid_search():
    X, y = toy(60)
    X2 = X[:, 0, :]
    pipe = Pipeline([("scale", FunctionTransformer(lambda a: a * 2.0)), ("clf", attend.SequenceClassifier(**SMALL))])
    pipe.fit(X2, y)
    assert pipe.score(X2, y) >= 0.9
    grid = GridSearchCV(attend.SequenceClassifier(**SMALL), {"d_model": [8, 16]}, cv=2)
    grid.fit(X2, y)
    assert grid.best_params_["d_model"] in (8, 16)
    assert len(grid.cv_results_["mean_test_score"]) == 2
    assert grid.score(X2, y) >= 0.9
