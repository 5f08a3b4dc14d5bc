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
cluster (each worker reading the model, tagging, sending the text back;
with --write, each worker writing its partitions to files instead, joined
in order afterwards, outside the time, to compare with the CLI's)."""

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


def cpu_seconds() -> float:
    """User + system CPU seconds of the calling process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def on_cluster(workers: int, job) -> tuple[float, object, list[float], str]:
    """Runs ``job(client)`` on a started LocalCluster of ``workers`` worker
    processes of 1 thread each. Returns its seconds, its result, each
    worker's peak RSS in MiB, and where the CPU time of those seconds went
    (the workers, their nannies, and this process: the client and the
    scheduler), to show what the engine costs beside the tagging."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        before = (client.run(cpu_seconds), client.run(cpu_seconds, nanny=True), cpu_seconds())
        t = time.perf_counter()
        result = job(client)
        secs = time.perf_counter() - t
        after = (client.run(cpu_seconds), client.run(cpu_seconds, nanny=True), cpu_seconds())
        rss = [kib / 1024 for kib in client.run(peak_rss_kib).values()]
    used = [sum(after[i].values()) - sum(before[i].values()) for i in range(2)] + [after[2] - before[2]]
    where = f"CPU s: workers {used[0]:.1f}, nannies {used[1]:.1f}, client and scheduler {used[2]:.1f} (of {secs * (os.cpu_count() or 1):.1f} available)"
    return secs, result, rss, where


def dask_tag(model: str, paragraphs: list[str], workers: int, partitions: int) -> tuple[float, str, list[float], str]:
    """Seconds, the CoNLL-U (sent back to the client), each worker's peak
    RSS in MiB, and where the CPU time went."""
    import dask.bag as db

    import attend.dask as ad

    def job(client) -> str:
        bag = db.from_sequence(paragraphs, npartitions=partitions)
        return "".join(ad.tag(bag, model).compute())

    return on_cluster(workers, job)


def dask_write(model: str, paragraphs: list[str], workers: int, partitions: int, folder: Path) -> tuple[float, str, list[float], str]:
    """As :func:`dask_tag`, but the workers write their partitions' CoNLL-U
    to files (``attend.dask.write_conllu``) instead of sending the text
    back: what a job on a corpus too large for the client does. The files
    are joined in name order afterwards (outside the time)."""
    import dask.bag as db

    import attend.dask as ad

    def job(client) -> list[str]:
        bag = db.from_sequence(paragraphs, npartitions=partitions)
        return ad.write_conllu(ad.tag(bag, model), folder)

    secs, paths, rss, where = on_cluster(workers, job)
    return secs, "".join(Path(p).read_text(encoding="utf-8") for p in paths), rss, where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the attend binary (release)")
    ap.add_argument("--model", default="runs/ewt", help="a tagger directory with its segmenter (default: the README's main job's)")
    ap.add_argument("--treebank", default="../shared/data/ud-english-ewt/en_ewt-ud-train.conllu", help="CoNLL-U whose raw text is the corpus")
    ap.add_argument("--words", type=int, default=1_000_000, help="about how many words to tag")
    ap.add_argument("--workers", type=int, default=2, help="the largest cluster (1 worker is always run)")
    ap.add_argument("--partitions", type=int, default=64, help="partitions of the bag")
    ap.add_argument("--write", action="store_true", help="also run each cluster with the workers writing CoNLL-U files (one per partition) instead of sending it to the client")
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
        model = os.path.abspath(args.model)
        # Each way of getting the output: its name's suffix and its run.
        ways = [("", lambda n: dask_tag(model, paragraphs, n, args.partitions))]
        if args.write:
            ways.append((", writing files", lambda n: dask_write(model, paragraphs, n, args.partitions, Path(tmp, f"written-{n}"))))
        for suffix, run in ways:
            for workers in sorted({1, args.workers}):
                secs, out, rss, where = run(workers)
                name = f"Dask, {workers} worker{'s' * (workers > 1)} x 1 thread{suffix}"
                if out != reference:
                    sys.exit(f"{name}: other CoNLL-U than the CLI's")
                rows.append((name, workers, words / secs, " / ".join(f"{r:.0f}" for r in rss)))
                print(f"  {name}: {secs:.1f} s, output equal to the CLI's; {where}", flush=True)
    cli_rate = {cores_: rate for name, cores_, rate, _ in rows if name.startswith("CLI")}
    # Each Dask way is compared with its own 1-worker run.
    one_worker = {name.endswith("writing files"): rate for name, n, rate, _ in rows if name.startswith("Dask") and n == 1}
    print(f"\n{words} words tagged by each\n")
    print(f"| engine | cores | words/s | vs 1 Dask worker | vs the CLI on as many cores | peak RSS (MiB, per process) |")
    print("|---|---|---|---|---|---|")
    for name, n, rate, rss in rows:
        vs_cli = f"{rate / cli_rate[n]:.2f}x" if n in cli_rate and name.startswith("Dask") else ""
        vs_one = f"{rate / one_worker[name.endswith('writing files')]:.2f}x" if name.startswith("Dask") else ""
        print(f"| {name} | {n} | {rate:,.0f} | {vs_one} | {vs_cli} | {rss} |")


if __name__ == "__main__":
    main()
