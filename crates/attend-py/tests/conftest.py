"""Shared test helpers: where the data and the `attend` binary are, a small
reader for UEA `.ts` files, and running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("ATTEND_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


def attend_bin() -> str:
    given = os.environ.get("ATTEND_BIN")
    if given:
        return given
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "attend"
        if p.is_file():
            return str(p)
    pytest.skip("the attend binary is not built (cargo build -p attend-cli, or set ATTEND_BIN)")


def cli(*args: str) -> str:
    """Runs the attend CLI; fails the test with its stderr if it fails."""
    r = subprocess.run([attend_bin(), *args], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"attend {' '.join(args)} failed:\n{r.stderr[-3000:]}"
    return r.stdout


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared data)")
    return path


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A UEA/UCR `.ts` file of equal-length series as aeon loads it:
    X `(n_cases, n_channels, n_timepoints)` float64, y the class strings."""
    xs, ys = [], []
    data = False
    for line in need(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            data = True
            continue
        if data:
            *channels, label = line.split(":")
            xs.append([[float(v) for v in c.split(",")] for c in channels])
            ys.append(label)
    return np.array(xs, dtype=np.float64), np.array(ys)


def report(dir: Path) -> dict:
    return json.loads((dir / "train_report.json").read_text())


# A small tagger and segmenter: one epoch each, seconds to train.
SMALL_TAGGER = ["--d-model", "32", "--heads", "4", "--ff-dim", "64", "--word-dim", "16", "--char-dim", "8", "--char-filters", "16",
                "--epochs", "1", "--segmenter-epochs", "1", "--segmenter-d-model", "32", "--segmenter-layers", "1", "--threads", "2"]  # fmt: skip


@pytest.fixture(scope="session")
def small_tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tagger directory (with its segmenter) the CLI trained on EWT dev."""
    dev = need(DATA / "ud-english-ewt/en_ewt-ud-dev.conllu")
    out = tmp_path_factory.mktemp("tagger") / "small"
    cli("train", "tagger", "--train", str(dev), "--dev-fraction", "0.1", "--out", str(out), *SMALL_TAGGER)
    return out
