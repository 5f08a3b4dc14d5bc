"""attend.dask on a LocalCluster of 2 worker processes of 1 thread each:
tagging split into partitions gives `attend tag`'s output byte for byte
(gathered, or written to files by the workers), models load once per
worker, bad documents become error records, a worker
killed mid-run loses nothing, and sequence models predict over dask arrays
and bags as they do in one process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("ATTEND_REQUIRE_DASK"):  # CI: run these, never skip them
    import distributed
else:
    distributed = pytest.importorskip("distributed", reason="attend.dask's tests need dask[distributed] (pip install 'attend[dask]')")
import dask.array as da  # noqa: E402
import dask.bag as db  # noqa: E402

import attend  # noqa: E402
import attend._cache  # noqa: E402
import attend.dask as ad  # noqa: E402
from conftest import DATA, attend_bin, cli, need, read_ts  # noqa: E402


def cluster(**kw):  # type: ignore[no-untyped-def]
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", **kw)


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    with cluster() as c, distributed.Client(c) as client:
        yield client


@pytest.fixture(scope="module")
def ewt_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """EWT test's raw text, as the CoNLL 2018 shared task built it."""
    gold = need(DATA / "ud-english-ewt/en_ewt-ud-test.conllu")
    return cli("raw-text", str(gold))


def cli_tag(model: Path, text: str) -> str:
    return subprocess.run([attend_bin(), "tag", "--model", str(model), "--threads", "1"], input=text, capture_output=True, text=True, check=True).stdout


def test_partitions_tag_as_the_cli_does(client, small_tagger, ewt_text):  # type: ignore[no-untyped-def]
    paragraphs = ewt_text.split("\n\n")
    bag = db.from_sequence(paragraphs, npartitions=10)
    assert bag.npartitions >= 8
    tagged = ad.tag(bag, small_tagger)
    assert tagged.npartitions == bag.npartitions
    want = cli_tag(small_tagger, ewt_text)
    got = tagged.compute()
    assert len(got) == len(paragraphs)
    assert "".join(got) == want
    # Each worker process read the model once, for all its partitions.
    loads = client.run(attend._cache.loads)
    assert sorted(loads.values()) == [1, 1], loads
    # Records: one per word, the tags of the CoNLL-U, sentences numbered on.
    records = ad.tag(bag, small_tagger, output="records").compute()
    words = [line.split("\t") for line in want.splitlines() if line and line[0].isdigit() and "\t" in line]
    words = [w for w in words if w[0].isdigit()]
    assert [(r["form"], r["upos"], r["xpos"]) for r in records] == [(w[1], w[3], w[4]) for w in words]
    assert records[-1]["sentence"] == want.count("# sent_id = ")
    assert [r["doc"] for r in records][:: max(1, len(records) // 50)] == sorted([r["doc"] for r in records][:: max(1, len(records) // 50)])
    assert all(set(r) == set(ad.RECORD_COLUMNS) and r["error"] is None for r in records)


def test_written_files_join_to_the_cli_output(client, small_tagger, ewt_text, tmp_path):  # type: ignore[no-untyped-def]
    paragraphs = ewt_text.split("\n\n")
    tagged = ad.tag(db.from_sequence(paragraphs, npartitions=12), small_tagger)
    paths = ad.write_conllu(tagged, tmp_path / "out")
    # Names sort in partition order past ten partitions; no temporary file is left.
    assert len(paths) == tagged.npartitions > 10 and paths == sorted(paths)
    assert sorted(os.listdir(tmp_path / "out")) == [Path(p).name for p in paths]
    assert "".join(Path(p).read_text(encoding="utf-8") for p in paths) == cli_tag(small_tagger, ewt_text)
    with pytest.raises(FileExistsError, match="part-00000.conllu"):
        ad.write_conllu(tagged, tmp_path / "out")
    # Lazily: nothing is written until computed.
    lazy = ad.write_conllu(ad.tag(db.from_sequence(paragraphs[:40], npartitions=3), small_tagger), tmp_path / "lazy", compute=False)
    assert len(lazy) == 3 and not (tmp_path / "lazy").exists()
    written = client.gather(client.compute(lazy))
    assert "".join(Path(p).read_text(encoding="utf-8") for p in written) == "".join(ad.tag(db.from_sequence(paragraphs[:40]), small_tagger).compute())
    records = ad.tag(db.from_sequence(paragraphs[:4], npartitions=1), small_tagger, output="records")
    with pytest.raises(TypeError, match="CoNLL-U strings"):
        ad.write_conllu(records, tmp_path / "records")
    assert not list((tmp_path / "records").glob("*")), "a failed write leaves no file"
    with pytest.raises(TypeError, match="tag\\(\\)"):
        ad.write_conllu(paragraphs, tmp_path / "list")


def test_a_dataframe_column(client, small_tagger, ewt_text, tmp_path):  # type: ignore[no-untyped-def]
    dd = pytest.importorskip("dask.dataframe", reason="dask.dataframe needs dask[dataframe] (pandas, pyarrow)")
    import pandas as pd

    paragraphs = ewt_text.split("\n\n")[:120]
    frame = pd.DataFrame({"text": paragraphs}, index=pd.RangeIndex(1000, 1000 + len(paragraphs)))
    ddf = dd.from_pandas(frame, npartitions=4)
    out = ad.tag(ddf["text"], small_tagger).compute()
    assert list(out.index) == list(frame.index)
    assert "".join(out) == cli_tag(small_tagger, "\n\n".join(paragraphs) + "\n")
    paths = ad.write_conllu(ad.tag(ddf["text"], small_tagger), tmp_path / "out")
    assert len(paths) == 4 and "".join(Path(p).read_text(encoding="utf-8") for p in paths) == "".join(out)
    words = ad.tag(ddf["text"], small_tagger, output="records").compute()
    assert list(words.columns) == list(ad.RECORD_COLUMNS)
    assert words["doc"].iloc[0] == 1000 and words["doc"].is_monotonic_increasing
    assert words["sentence"].iloc[-1] == "".join(out).count("# sent_id = ")


def test_bad_documents_are_error_records(client, small_tagger, tmp_path):  # type: ignore[no-untyped-def]
    good = ["The old man the boat. I'm home.", "Yes!"]
    path = tmp_path / "doc.txt"
    path.write_text(good[1])
    docs = [good[0], b"caf\xff bad bytes", "x" * (1 << 20), None, 12, Path(tmp_path / "missing.txt"), path, good[1]]
    got = ad.tag(db.from_sequence(docs, npartitions=3), small_tagger).compute()
    assert len(got) == len(docs)
    errors = {i: g for i, g in enumerate(got) if g.startswith("# error = ")}
    assert sorted(errors) == [1, 2, 3, 4, 5]
    assert "document 1:1: not valid UTF-8" in errors[1]
    assert "document 2:1: more than 4096 characters without white space" in errors[2]
    assert "document 3: no text" in errors[3] and "got int" in errors[4] and "missing.txt" in errors[5]
    ok = [g for i, g in enumerate(got) if i not in errors]
    assert "".join(ok) == cli_tag(small_tagger, "\n\n".join([good[0], good[1], good[1]]) + "\n")
    records = ad.tag(db.from_sequence(docs, npartitions=3), small_tagger, output="records").compute()
    failed = [r for r in records if r["error"] is not None]
    assert [r["doc"] for r in failed] == [1, 2, 3, 4, 5] and all(r["form"] is None for r in failed)
    # Without the limit, the long run is one token, as `attend tag` makes it.
    long = ad.tag(db.from_sequence(docs[2:3]), small_tagger, max_token_chars=None).compute()
    assert not long[0].startswith("# error")
    with pytest.raises(TypeError, match="bag"):
        ad.tag(docs, small_tagger)
    with pytest.raises(ValueError, match="output"):
        ad.tag(db.from_sequence(docs), small_tagger, output="xml")


def test_a_killed_worker_loses_nothing(small_tagger, ewt_text):  # type: ignore[no-untyped-def]
    text = "\n\n".join([ewt_text.strip()] * 4) + "\n"
    paragraphs = text.split("\n\n")
    want = cli_tag(small_tagger, text)
    bag = db.from_sequence(paragraphs, npartitions=32)
    with cluster() as c, distributed.Client(c) as client:
        futures = client.compute(ad.tag(bag, small_tagger).to_delayed())
        while not any(f.done() for f in futures):
            time.sleep(0.01)
        busy = [w for w, tasks in client.processing().items() if tasks] or list(client.scheduler_info()["workers"])
        pids = client.run(os.getpid, workers=busy[:1])
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        finished_at_kill = sum(f.done() for f in futures)
        got = client.gather(futures)
        assert 0 < finished_at_kill < len(futures), "the worker must die mid-run"
    assert "".join(doc for part in got for doc in part) == want


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = DATA / "uea/ItalyPowerDemand"
    X, y = read_ts(root / "ItalyPowerDemand_TRAIN.ts")
    X_test, _ = read_ts(root / "ItalyPowerDemand_TEST.ts")
    est = attend.SequenceClassifier(epochs=3, d_model=32, heads=4, ff_dim=64, random_state=0, n_threads=2).fit(X, y)
    path = tmp_path_factory.mktemp("seq") / "model"
    est.save(path)
    return est, path, X_test


def test_predict_over_arrays_and_bags(client, sequence_model, small_tagger):  # type: ignore[no-untyped-def]
    est, path, X = sequence_model
    lazy = ad.predict(da.from_array(X, chunks=(100, 1, 24)), path)
    assert lazy.shape == (len(X),) and lazy.numblocks == (len(X) // 100 + (len(X) % 100 > 0),)
    assert np.array_equal(lazy.compute(), est.predict(X))
    proba = ad.predict(da.from_array(X[:, 0, :], chunks=(64, 12)), path, proba=True).compute()
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=1e-6, atol=1e-7)
    # Series of other lengths, in a bag.
    ragged = [x[:, : 12 + i % 13] for i, x in enumerate(X[:90])]
    labels = ad.predict(db.from_sequence(ragged, npartitions=4), path).compute()
    assert list(labels) == list(est.predict(ragged))
    # The wrong kind of model is refused: here at once, in a task when tagging.
    with pytest.raises(TypeError, match="not a sequence model"):
        ad.predict(da.zeros((4, 24)), small_tagger)
    with pytest.raises(TypeError, match="not a tagger"):
        ad.tag(db.from_sequence(["Hello."]), path).compute()
