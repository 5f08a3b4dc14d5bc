"""MiniRocket (aeon) on UEA/UCR .ts files: test accuracy and fit + predict time.

Called by scripts/minirocket.sh and scripts/uea.sh with the data directory
and set names (`--json PATH`: write the results there instead of stdout).
Seeds 0..4 (MiniRocket's kernels are fixed; its random_state draws the
biases' quantiles), 2 threads; unequal lengths zero-padded to the longest.
"""
import json
import os
import sys
import time

import numpy as np
from aeon.classification.convolution_based import MiniRocketClassifier
from aeon.datasets import load_from_ts_file


def padded(xs, length):
    """A list of (channels, time) arrays -> (n, channels, length), zero-padded at the end."""
    if isinstance(xs, np.ndarray):
        xs = list(xs)
    out = np.zeros((len(xs), xs[0].shape[0], length), dtype=np.float64)
    for i, x in enumerate(xs):
        out[i, :, : x.shape[1]] = x
    return out


def main():
    args = sys.argv[1:]
    out = None
    if "--json" in args:
        k = args.index("--json")
        out = args[k + 1]
        del args[k : k + 2]
    data, sets = args[0], args[1:]
    results = {}
    for name in sets:
        xtr, ytr = load_from_ts_file(os.path.join(data, name, f"{name}_TRAIN.ts"))
        xte, yte = load_from_ts_file(os.path.join(data, name, f"{name}_TEST.ts"))
        longest = max(x.shape[-1] for x in list(xtr) + list(xte))
        xtr, xte = padded(xtr, longest), padded(xte, longest)
        accs, fits, predicts = [], [], []
        for seed in range(5):
            clf = MiniRocketClassifier(random_state=seed, n_jobs=2)
            t0 = time.perf_counter()
            clf.fit(xtr, ytr)
            t1 = time.perf_counter()
            pred = clf.predict(xte)
            t2 = time.perf_counter()
            accs.append(float(np.mean(pred == yte)))
            fits.append(t1 - t0)
            predicts.append(t2 - t1)
        results[name] = {
            "accuracy_mean": float(np.mean(accs)),
            "accuracy_std": float(np.std(accs, ddof=1)),
            "accuracies": accs,
            "fit_seconds_mean": float(np.mean(fits)),
            "predict_seconds_mean": float(np.mean(predicts)),
            "padded_length": longest,
        }
        r = results[name]
        print(f"{name:16s} MiniRocket accuracy {100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f}%  "
              f"fit {r['fit_seconds_mean']:.2f} s  predict {r['predict_seconds_mean']:.2f} s  (padded to {longest})", flush=True)
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=2)
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
