"""Sampling throughput against the number of streams generated together: the
symbols per second of `rnn_gpu.sample` with N samples at once, and the ratio
to one stream, side by side in one run. Not a test: a measurement.

    python -m bench.sampling [--hidden 384] [--layers 2] [--vocab 65] [--streams 1,8,32] [--threads 1,2]
                             [--length 400] [--repeats 3]

A model of random weights (the speed does not depend on what it learned),
the NumPy backend with at most each of `--threads` threads (1: the streams
in one group, BLAS on one thread; more: groups of streams on threads of
their own, rnn_gpu.sample.stream_threads), temperature 1; each
configuration's median of `--repeats` timings, the configurations
alternating so that load from other jobs falls on all alike. Each row's
`vs_one_stream` is against one stream at the same threads. `gemm_bound`:
for each stream count, the step's matrix products alone (L recurrences, L-1
inputs, the output layer; float32, BLAS on one thread, the median of 200),
and the symbols per second they would allow on one core if nothing else
took time. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from rnn_gpu import TextRNN, sample
from rnn_gpu.backends import CpuBackend
from rnn_gpu.bench import machine
from rnn_gpu.data import Vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--streams", default="1,8,32")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    vocab = Vocab("chars", tuple(range(32, 32 + args.vocab)))
    threads = [int(n) for n in args.threads.split(",")]
    models = {t: TextRNN(args.vocab, args.hidden, CpuBackend(threads=t), layers=args.layers, seed=0) for t in threads}
    streams = [int(n) for n in args.streams.split(",")]
    configurations = [(t, n) for t in threads for n in streams]
    times = {c: [] for c in configurations}
    for repeat in range(args.repeats):
        for t, n in configurations:
            start = time.perf_counter()
            sample(models[t], vocab, length=args.length, num_samples=n, seed=repeat, prime="AB")
            times[t, n].append(time.perf_counter() - start)
    rows = [{"threads": t, "streams": n, "symbols_per_s": n * args.length / statistics.median(times[t, n]),
             "seconds": statistics.median(times[t, n])} for t, n in configurations]
    for row in rows:
        one = next((r["symbols_per_s"] for r in rows if r["streams"] == 1 and r["threads"] == row["threads"]), None)
        row["vs_one_stream"] = row["symbols_per_s"] / one if one else None
    bound = [gemm_bound(args.hidden, args.layers, args.vocab, n) for n in streams]
    print(json.dumps({"machine": machine(), "load_avg": os.getloadavg()[0], **vars(args), "rows": rows,
                      "gemm_bound": bound}, indent=1))


def gemm_bound(hidden: int, layers: int, vocab: int, n: int, repeats: int = 200) -> dict:
    """The seconds of one step's matrix products for `n` streams on one BLAS thread, and the symbols/s they allow."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, hidden), dtype=np.float32)
    square, out_w = (rng.standard_normal((hidden, k), dtype=np.float32) for k in (hidden, vocab))
    h, o = np.empty((n, hidden), np.float32), np.empty((n, vocab), np.float32)
    times = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(2 * layers - 1):
                np.matmul(a, square, out=h)
            np.matmul(a, out_w, out=o)
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"streams": n, "gemm_seconds": seconds, "symbols_per_s_one_core": n / seconds}


if __name__ == "__main__":
    main()
