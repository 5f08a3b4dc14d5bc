"""The Ray recipe (docs/beyond-one-machine.md): ``map_batches`` with
attend.ray.Tag and attend.ray.Predict on 2 actors gives what the package
gives in one process. Skipped where Ray is not installed (CI does not
install it; ``pip install 'attend[ray]'`` to run these)."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'attend[ray]' to run the Ray recipe's tests")
import attend  # noqa: E402
import attend.ray  # noqa: E402
from conftest import DATA, cli, need, read_ts  # noqa: E402


@pytest.fixture(scope="module")
def ray_context():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    yield ctx
    ray.shutdown()


def test_tag_rows_as_the_package_does(ray_context, small_tagger):  # type: ignore[no-untyped-def]
    text = cli("raw-text", str(need(DATA / "ud-english-ewt/en_ewt-ud-test.conllu")))
    paragraphs = text.split("\n\n")[:150]
    rows = [{"id": i, "text": p} for i, p in enumerate(paragraphs)] + [{"id": 150, "text": "x" * 5000}]
    ds = ray.data.from_items(rows)
    tagged = ds.map_batches(attend.ray.Tag, fn_constructor_kwargs={"model": str(small_tagger)}, concurrency=2, num_cpus=1, batch_size=16)
    out = tagged.take_all()
    assert [r["id"] for r in out] == list(range(151))
    local = attend.load(small_tagger)
    for r in out[:150]:
        assert r["error"] is None
        assert r["conllu"] == local.tag(r["text"], conllu=True)
        assert r["sentences"] == r["conllu"].count("# sent_id = ")
    assert out[150]["conllu"] == "" and "more than 4096 characters without white space" in out[150]["error"]
    words = ds.limit(20).map_batches(
        attend.ray.Tag, fn_constructor_kwargs={"model": str(small_tagger), "output": "records", "id_column": "id"}, concurrency=1, batch_size=8
    ).take_all()
    want = [(i, w.form, w.upos) for i, p in enumerate(paragraphs[:20]) for s in local.tag(p) for w in s.words]
    assert [(r["doc"], r["form"], r["upos"]) for r in words] == want


def test_predict_rows(ray_context, tmp_path):  # type: ignore[no-untyped-def]
    root = DATA / "uea/ItalyPowerDemand"
    X, y = read_ts(root / "ItalyPowerDemand_TRAIN.ts")
    X_test, _ = read_ts(root / "ItalyPowerDemand_TEST.ts")
    est = attend.SequenceClassifier(epochs=2, d_model=32, heads=4, ff_dim=64, random_state=0, n_threads=2).fit(X, y)
    est.save(tmp_path / "m")
    ds = ray.data.from_numpy(X_test[:200].astype(np.float32))
    out = ds.map_batches(attend.ray.Predict, fn_constructor_kwargs={"model": str(tmp_path / "m"), "column": "data"}, concurrency=2, num_cpus=1, batch_size=50).take_all()
    assert [r["label"] for r in out] == list(est.predict(X_test[:200]))
