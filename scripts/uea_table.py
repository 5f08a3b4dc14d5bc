"""The table of scripts/uea.sh: attend (OUT/SET/report.json, or a one-seed
run's OUT/SET/train_report.json) beside MiniRocket (OUT/minirocket.json),
per set and the mean over the sets. Standard library only.

    python3 scripts/uea_table.py OUT SET...
"""
import json
import os
import statistics
import sys


def attend(out, name):
    """(accuracies, train seconds, predict seconds) of every seed, or None."""
    d = os.path.join(out, name)
    runs = None
    if os.path.exists(os.path.join(d, "report.json")):
        runs = json.load(open(os.path.join(d, "report.json")))["runs"]
    elif os.path.exists(os.path.join(d, "train_report.json")):
        runs = [json.load(open(os.path.join(d, "train_report.json")))["run"]]
    if not runs:
        return None
    return ([r["test_score"] for r in runs], [r["train_seconds"] for r in runs], [r.get("test_seconds") or 0.0 for r in runs])


def mean_std(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    out, sets = sys.argv[1], sys.argv[2:]
    path = os.path.join(out, "minirocket.json")
    mr = json.load(open(path)) if os.path.exists(path) else {}
    print()
    print("| set | attend accuracy | attend fit / predict (s) | MiniRocket accuracy | MiniRocket fit / predict (s) | difference |")
    print("|---|---|---|---|---|---|")
    ours, theirs, worst, fits = [], [], None, []
    for name in sets:
        a = attend(out, name)
        if a:
            fits.append((statistics.mean(a[1]), name))
        m = mr.get(name)
        cells = [name]
        if a:
            am, asd = mean_std(a[0])
            cells += [f"{100 * am:.2f} +- {100 * asd:.2f}% ({len(a[0])})", f"{statistics.mean(a[1]):.1f} / {statistics.mean(a[2]):.2f}"]
        else:
            cells += ["-", "-"]
        if m:
            cells += [f"{100 * m['accuracy_mean']:.2f} +- {100 * m['accuracy_std']:.2f}%", f"{m['fit_seconds_mean']:.2f} / {m['predict_seconds_mean']:.2f}"]
        else:
            cells += ["-", "-"]
        if a and m:
            diff = 100 * (am - m["accuracy_mean"])
            cells.append(f"{diff:+.2f}")
            ours.append(am)
            theirs.append(m["accuracy_mean"])
            worst = diff if worst is None else min(worst, diff)
        else:
            cells.append("-")
        print("| " + " | ".join(cells) + " |")
    if ours:
        o, t = statistics.mean(ours), statistics.mean(theirs)
        print(f"| mean of {len(ours)} | **{100 * o:.2f}%** | | **{100 * t:.2f}%** | | {100 * (o - t):+.2f} (worst set {worst:+.2f}) |")
    if fits:
        s, n = max(fits)
        print(f"\nslowest attend fit: {n}, {s:.1f} s per seed")


if __name__ == "__main__":
    main()
