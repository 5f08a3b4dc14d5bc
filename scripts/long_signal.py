"""Writes the long-signal files of docs/sequences.md: one sequence of N
4-channel vectors with a label per vector (3 regimes of 50-400 vectors
each, told apart by level, frequency and noise).

    python3 scripts/long_signal.py OUT_DIR     (train 100,000; dev 20,000; test 100,000 vectors)
"""
import math
import os
import random
import sys


def write(path, n, seed):
    r = random.Random(seed)
    regime, left = 0, 0
    with open(path, "w") as f:
        f.write("# a long signal: 4 channels, regime label per vector\n")
        for t in range(n):
            if left == 0:
                regime, left = r.randrange(3), r.randint(50, 400)
            left -= 1
            base = [0.0, 0.6, -0.6][regime]
            freq = [0.05, 0.2, 0.5][regime]
            vals = [base + r.gauss(0, 1), math.sin(freq * t) + r.gauss(0, 0.5), r.gauss(0, 1 + regime * 0.5), r.gauss(0, 1)]
            f.write(" ".join(f"{v:.4f}" for v in vals) + f" {'abc'[regime]}\n")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "long-signal"
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "train.txt"), 100_000, 1)
    write(os.path.join(out, "dev.txt"), 20_000, 2)
    write(os.path.join(out, "test.txt"), 100_000, 3)
