"""Tagger: a model the CLI trained tags as `attend tag` does; a model
trained from Python runs in the CLI. Small settings on a slice of EWT."""

from __future__ import annotations

import pickle

import pytest

import attend
from conftest import DATA, attend_bin, need

TEXT = "I'm home. The old man the boat."


@pytest.fixture(scope="module")
def ewt_dev():
    return need(DATA / "ud-english-ewt/en_ewt-ud-dev.conllu")


def test_cli_model_tags_as_the_cli_does(small_tagger, ewt_dev):
    cli_model = small_tagger
    import subprocess

    want = subprocess.run([attend_bin(), "tag", "--model", str(cli_model), "--threads", "2"], input=TEXT, capture_output=True, text=True, check=True).stdout
    tagger = attend.load(cli_model)
    assert isinstance(tagger, attend.Tagger) and tagger.has_segmenter
    assert tagger.tag(TEXT, conllu=True) == want
    sentences = tagger.tag(TEXT)
    assert len(sentences) == sum(1 for line in want.splitlines() if line.startswith("# text"))
    rows = [line.split("\t") for line in want.splitlines() if line and not line.startswith("#")]
    words = [r for r in rows if r[0].isdigit()]
    assert [w.form for s in sentences for w in s.words] == [r[1] for r in words]
    assert [w.upos for s in sentences for w in s.words] == [r[3] for r in words]
    assert [w.xpos for s in sentences for w in s.words] == [r[4] for r in words]
    multi = [t for s in sentences for t in s.tokens if t.is_multiword]
    assert len(multi) == sum(1 for r in rows if "-" in r[0])
    assert [len(x) for x in tagger.tag([TEXT, "Hello."])] == [len(sentences), 1]
    # CoNLL-U in, tags out, as `attend tag --input`; the metrics as a dict.
    gold = ewt_dev.read_text().split("\n\n")[:20]
    tagged = tagger.tag_conllu("\n\n".join(gold) + "\n\n")
    assert tagged.count("\n\n") == 20
    # The metrics with gold tokens: UPOS is the share of words tag_conllu gets right.
    m = tagger.evaluate(ewt_dev)
    assert m["Tokens"]["f1"] == 1.0
    gold_text = ewt_dev.read_text()
    pairs = [(g.split("\t")[3], t.split("\t")[3]) for g, t in zip(gold_text.splitlines(), tagger.tag_conllu(gold_text).splitlines())
             if g and not g.startswith("#") and g.split("\t")[0].isdigit()]  # fmt: skip
    assert m["UPOS"]["f1"] == pytest.approx(sum(a == b for a, b in pairs) / len(pairs), abs=1e-9)
    raw = tagger.evaluate(ewt_dev, raw_text=True)
    assert 0.5 < raw["Tokens"]["f1"] < 1.0 and "Sentences" in raw
    a = tagger.attention(["The", "old", "man"])
    assert len(a["layers"]) == 2 and a["layers"][0].shape == (4, 3, 3) and len(a["upos"]) == 3
    again = pickle.loads(pickle.dumps(tagger))
    assert again.tag(TEXT, conllu=True) == want


def test_python_model_runs_in_the_cli(tmp_path, ewt_dev):
    import subprocess

    tagger = attend.Tagger(d_model=32, heads=4, ff_dim=64, word_dim=16, char_dim=8, char_filters=16, epochs=1, n_threads=2,
                           segmenter_settings={"model": {"d_model": 32, "layers": 1}, "train": {"epochs": 1}})  # fmt: skip
    tagger.fit(ewt_dev, dev_fraction=0.1, out=tmp_path / "py")
    want = tagger.tag(TEXT, conllu=True)
    got = subprocess.run([attend_bin(), "tag", "--model", str(tmp_path / "py"), "--threads", "2"], input=TEXT, capture_output=True, text=True, check=True).stdout
    assert got == want
    tagger.save(tmp_path / "copy")
    assert attend.load(tmp_path / "copy").tag(TEXT, conllu=True) == want
    with pytest.raises(ValueError, match="dev file"):
        attend.Tagger().fit(ewt_dev)


def test_main_job_model_tags_as_the_cli_does():
    """The README's main job's tagger (runs/ewt, when it has been run here)."""
    import subprocess

    from conftest import ROOT

    model = ROOT / "runs/ewt"
    if not (model / "config.json").is_file():
        pytest.skip("runs/ewt is not here: run the README's main job first")
    want = subprocess.run([attend_bin(), "tag", "--model", str(model), "--threads", "2"], input=TEXT, capture_output=True, text=True, check=True).stdout
    tagger = attend.load(model)
    assert tagger.tag(TEXT, conllu=True) == want
    words = [r.split("\t") for r in want.splitlines() if r and not r.startswith("#") and r.split("\t")[0].isdigit()]
    assert [(w.form, w.upos, w.xpos, w.feats or "_") for s in tagger.tag(TEXT) for w in s.words] == [(r[1], r[3], r[4], r[5]) for r in words]


def test_precision_is_the_clis(small_tagger):
    """set_precision chooses what `attend --precision` chooses: the same
    tags as the CLI under each setting; a wrong name is refused and leaves
    the setting as it was."""
    import subprocess

    before = attend.get_precision()
    assert before[0] == "auto" and before[1] in ("f32", "bf16")
    tagger = attend.load(small_tagger)
    try:
        for setting in ("f32", "auto"):
            attend.set_precision(setting)
            assert attend.get_precision()[0] == setting
            want = subprocess.run(
                [attend_bin(), "--precision", setting, "tag", "--model", str(small_tagger), "--threads", "2"],
                input=TEXT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert tagger.tag(TEXT, conllu=True) == want
        with pytest.raises(attend.AttendError, match="auto, f32 or bf16"):
            attend.set_precision("fp8")
        assert attend.get_precision()[0] == "auto"
    finally:
        attend.set_precision(before[0])
