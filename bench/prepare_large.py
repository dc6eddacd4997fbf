"""Preparing a large corpus: peak memory, throughput on one core, and how
soon training starts on the result. Not a test: a measurement.

    python -m bench.prepare_large [--gigabytes 1] [--dir /tmp] [--vocab words --distinct 5000000]

Builds a text file of the given size by repeating a source text (default:
../shared/data/tinyshakespeare.txt, else the standard library's sources),
or with --distinct, of words drawn from a Zipf law over that many distinct
words (most of which then occur), runs `rnn-gpu prepare` in a fresh process
on one core, and reports its peak RSS and MB/s; then trains 100 steps on the
prepared corpus (PREFIX.json, so no cache is prepared) and reports the
seconds from the start of the process to its first step's metrics record and
the process's peak RSS over those 100 steps. Prints one JSON object; removes
the files it made.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_STEPS = 100


def build_corpus(path: Path, size: int, source: Path | None) -> None:
    if source and source.is_file():
        text = source.read_bytes()
    else:
        from rnn_gpu.data.corpus import default_corpus

        text = default_corpus()[0].encode()
    with open(path, "wb") as f:
        written = 0
        while written < size:
            piece = text[: size - written]
            f.write(piece)
            written += len(piece)


def build_word_corpus(path: Path, size: int, distinct: int, seed: int = 0) -> None:
    """Words (hexadecimal strings, `distinct` of them) drawn from Zipf's law
    with exponent 1.2, lines of a dozen words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    table = np.array([b"%x" % (i * 2654435761 % 2**32) for i in range(distinct)])
    with open(path, "wb") as f:
        written = 0
        while written < size:
            ids = (rng.zipf(1.2, size=12 << 18) - 1) % distinct
            lines = table[ids].reshape(-1, 12).tolist()
            piece = b"".join(b" ".join(line) + b".\n" for line in lines)[: size - written]
            f.write(piece)
            written += len(piece)


def start_child(cmd: list[str]) -> tuple[subprocess.Popen, float]:
    """A child process with one thread, and when it started."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env), time.perf_counter()


def finish(proc: subprocess.Popen, start: float) -> tuple[float, int]:
    """Waits for `proc`: its wall seconds since `start` and peak RSS (bytes)."""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(proc.stderr.read().decode())
    return seconds, usage.ru_maxrss * 1024


def first_record_seconds(metrics: Path, proc: subprocess.Popen, start: float) -> float:
    """Seconds from `start` until `metrics` holds its first record."""
    while not (metrics.exists() and metrics.stat().st_size > 0):
        if proc.poll() is not None:
            raise SystemExit(f"training ended before its first record: {proc.stderr.read().decode()}")
        time.sleep(0.005)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")
    parser.add_argument("--vocab", default="chars")
    parser.add_argument("--distinct", type=int, default=0, help="a corpus of this many distinct words (Zipf)")
    parser.add_argument("--core", type=int, default=0, help="the core `prepare` runs on (taskset -c)")
    args = parser.parse_args()
    size = int(args.gigabytes * 2**30)
    corpus = args.dir / "rnn_gpu_large_corpus.txt"
    if args.distinct:  # in a process of its own: a child forked from a large parent would count its pages
        builder = multiprocessing.Process(target=build_word_corpus, args=(corpus, size, args.distinct))
        builder.start()
        builder.join()
    else:
        build_corpus(corpus, size, args.source)
    prefix, out = args.dir / "rnn_gpu_large", args.dir / "rnn_gpu_large_run"
    try:
        seconds, peak = finish(*start_child(["taskset", "-c", str(args.core), sys.executable, "-m", "rnn_gpu",
                                             "prepare", str(corpus), "-o", str(prefix), "--vocab", args.vocab]))
        meta = json.loads(Path(f"{prefix}.json").read_text())
        proc, start = start_child([sys.executable, "-m", "rnn_gpu", "train", f"{prefix}.json", "--out", str(out),
                                   "--steps", str(TRAIN_STEPS), "--log-every", "1", "--force", "--quiet",
                                   "--backend", "numpy"])
        first_step = first_record_seconds(out / "metrics.jsonl", proc, start)
        train_seconds, train_peak = finish(proc, start)
    finally:
        for p in (corpus, Path(f"{prefix}.bin"), Path(f"{prefix}.json"), Path(f"{prefix}.unk.bin")):
            p.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
    result = {"corpus_bytes": size, "prepare_seconds": seconds, "prepare_mb_per_s": size / 2**20 / seconds,
              "prepare_peak_rss_mb": peak / 2**20, "first_step_seconds": first_step,
              f"train_{TRAIN_STEPS}_steps_seconds": train_seconds, "train_peak_rss_mb": train_peak / 2**20,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
              "cpu_affinity": f"one core (taskset -c {args.core})", "vocab": args.vocab,
              "distinct_words": args.distinct,
              **{k: meta[k] for k in ("vocab_exact", "count_error", "tokens_counted", "unknown_count",
                                      "trained_on_every") if k in meta}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
