"""Prediction throughput from Python against the CLI, on the same model and
data (run by scripts/bench-python.sh). Prints time per pass and the ratio.

The model is trained by the CLI on a UEA set; the test series, repeated to
a few seconds of work, are written as a .ts file for `attend predict` and
read once into numpy for `SequenceClassifier.predict`. The CLI's time is its
whole run (start, reading the file, loading the model, predicting, writing);
Python's is `predict` on the array already in memory, with the model loaded.
Both use the same thread count."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import attend



def cpu() -> str:
    """The CPU's name and widest vector instructions, as the figures need."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {isa}, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="the attend binary (release)")
    ap.add_argument("--set", default="../shared/data/uea/GunPoint", help="a UEA set directory")
    ap.add_argument("--repeat", type=int, default=40, help="copies of the test set to predict")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    name = Path(a.set).name
    train, test = Path(a.set) / f"{name}_TRAIN.ts", Path(a.set) / f"{name}_TEST.ts"
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        subprocess.run([a.bin, "train", "sequence", "--train", str(train), "--out", str(model), "--epochs", "5",
                        "--threads", str(a.threads)], check=True, capture_output=True)  # fmt: skip
        X, y = attend.read_series(test)
        X, y = np.concatenate([X] * a.repeat), np.concatenate([y] * a.repeat)
        big = Path(tmp) / "big.ts"
        header = "".join(line + "\n" for line in test.read_text().splitlines() if line.startswith("@") and not line.lower().startswith("@data"))
        rows = (":".join(",".join(repr(float(v)) for v in ch) for ch in x) + ":" + lab for x, lab in zip(X, y))
        big.write_text(header + "@data\n" + "\n".join(rows) + "\n")
        cli_times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            subprocess.run([a.bin, "predict", "--model", str(model), "--input", str(big), "--output", str(Path(tmp) / "out.txt"),
                            "--threads", str(a.threads)], check=True, capture_output=True)  # fmt: skip
            cli_times.append(time.perf_counter() - t)
        clf = attend.load(model).set_params(n_threads=a.threads)
        py_times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            predicted = clf.predict(X)
            py_times.append(time.perf_counter() - t)
    n = len(X)
    c, p = min(cli_times), min(py_times)
    print(f"{name} test x{a.repeat}: {n} series of {X.shape[2]} points, {a.threads} threads, {cpu()}")
    print(f"CLI `attend predict` (whole run): {c:.3f} s  ({n / c:,.0f} series/s)")
    print(f"Python predict (model loaded):    {p:.3f} s  ({n / p:,.0f} series/s)")
    print(f"Python / CLI throughput: {c / p:.2f}x  (>= 0.90 is within 10%)")
    assert len(predicted) == n


if __name__ == "__main__":
    main()
