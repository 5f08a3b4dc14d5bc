"""Tagging raw text with the CLI and with attend.dask (run by
scripts/bench-dask.sh): words per second of `attend tag` on all cores and on
one, and of LocalClusters of 1 and 2 (see --workers) worker processes of 1
thread each; the speed-up of the most workers over 1, the ratio to the CLI
on as many cores, and peak memory (RSS) per process. Every engine's CoNLL-U
must equal the CLI's byte for byte, or the script fails.

The corpus is EWT train's raw text (as `attend raw-text` builds it) repeated
to about --words words, split into paragraphs (the documents of the bag).
Times are wall clock of the whole job: for the CLI its run (start, model,
reading, tagging, writing a file); for Dask `compute()` on a started
cluster (each worker reading the model, tagging, sending the text back)."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_python import cpu


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cli_tag(bin_: str, model: str, corpus: Path, threads: int, out: Path) -> tuple[float, int, float]:
    """Seconds, words, peak RSS in MiB of one `attend tag` run."""
    t = time.perf_counter()
    r = subprocess.run([bin_, "tag", "--model", model, "--input", str(corpus), "--output", str(out), "--threads", str(threads), "--stats"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    secs = time.perf_counter() - t
    m = re.search(r"tagged \d+ sentences?, (\d+) words.*peak RSS ([\d.]+) (\w+)", r.stderr)
    if not m:
        sys.exit(f"could not read `attend tag --stats`: {r.stderr}")
    scale = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m[3]]
    return secs, int(m[1]), float(m[2]) * scale


def dask_tag(model: str, paragraphs: list[str], workers: int, partitions: int) -> tuple[float, str, list[float]]:
    """Seconds, the CoNLL-U, and each worker's peak RSS in MiB."""
    import dask.bag as db
    from distributed import Client, LocalCluster

    import attend.dask as ad

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        bag = db.from_sequence(paragraphs, npartitions=partitions)
        t = time.perf_counter()
        out = "".join(ad.tag(bag, model).compute())
        secs = time.perf_counter() - t
        rss = [kib / 1024 for kib in client.run(peak_rss_kib).values()]
    return secs, out, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the attend binary (release)")
    ap.add_argument("--model", default="runs/ewt", help="a tagger directory with its segmenter (default: the README's main job's)")
    ap.add_argument("--treebank", default="../shared/data/ud-english-ewt/en_ewt-ud-train.conllu", help="CoNLL-U whose raw text is the corpus")
    ap.add_argument("--words", type=int, default=1_000_000, help="about how many words to tag")
    ap.add_argument("--workers", type=int, default=2, help="the largest cluster (1 worker is always run)")
    ap.add_argument("--partitions", type=int, default=64, help="partitions of the bag")
    args = ap.parse_args()
    if not Path(args.model, "segmenter").is_dir():
        sys.exit(f"{args.model} has no segmenter/: train the README's main job first, or pass --model")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="attend-bench-dask-") as tmp:
        text = subprocess.run([args.bin, "raw-text", args.treebank], capture_output=True, text=True, check=True).stdout.strip()
        one = Path(tmp, "one.txt")
        one.write_text(text + "\n")
        _, words_once, _ = cli_tag(args.bin, args.model, one, cores, Path(tmp, "one.conllu"))
        copies = max(1, round(args.words / words_once))
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("\n\n".join([text] * copies) + "\n")
        paragraphs = corpus.read_text().split("\n\n")
        print(f"{cpu()}; {datetime.date.today()}")
        print(f"corpus: {args.treebank} raw text x{copies}, {len(paragraphs)} paragraphs, {corpus.stat().st_size / 1e6:.1f} MB; model {args.model}")
        rows = []
        want = Path(tmp, "cli.conllu")
        for threads in sorted({cores, args.workers, 1}, reverse=True):
            secs, words, rss = cli_tag(args.bin, args.model, corpus, threads, want)
            rows.append((f"CLI, {threads} thread{'s' * (threads > 1)}", threads, words / secs, f"{rss:.0f}"))
            print(f"  {rows[-1][0]}: {secs:.1f} s", flush=True)
        reference = want.read_text()
        for workers in sorted({1, args.workers}):
            secs, out, rss = dask_tag(os.path.abspath(args.model), paragraphs, workers, args.partitions)
            if out != reference:
                sys.exit(f"Dask with {workers} worker(s) wrote other CoNLL-U than the CLI")
            rows.append((f"Dask, {workers} worker{'s' * (workers > 1)} x 1 thread", workers, words / secs, " / ".join(f"{r:.0f}" for r in rss)))
            print(f"  {rows[-1][0]}: {secs:.1f} s, output equal to the CLI's", flush=True)
    cli_rate = {cores_: rate for name, cores_, rate, _ in rows if name.startswith("CLI")}
    one_worker = next(rate for name, n, rate, _ in rows if name.startswith("Dask") and n == 1)
    print(f"\n{words} words tagged by each\n")
    print(f"| engine | cores | words/s | vs 1 Dask worker | vs the CLI on as many cores | peak RSS (MiB, per process) |")
    print("|---|---|---|---|---|---|")
    for name, n, rate, rss in rows:
        vs_cli = f"{rate / cli_rate[n]:.2f}x" if n in cli_rate and name.startswith("Dask") else ""
        vs_one = f"{rate / one_worker:.2f}x" if name.startswith("Dask") else ""
        print(f"| {name} | {n} | {rate:,.0f} | {vs_one} | {vs_cli} | {rss} |")


if __name__ == "__main__":
    main()
