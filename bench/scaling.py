"""Data-parallel scaling on this machine: global characters per second and
the all-reduce's share of the step at 1 and N ranks, the same global batch.
Not a test: a measurement.

    python -m bench.scaling [--ranks 1,2] [--steps 60] [--configs 256x32x64,512x64x64]

Each point is one `mpiexec -n N rnn-gpu train` on a random 65-symbol corpus
(NumPy backend, float32, no validation), with BLAS threads per rank = cores /
ranks as the trainer sets them; the figures are the medians over the logged
intervals after the first. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rnn_gpu.bench import machine


def run_point(ranks: int, H: int, B: int, T: int, steps: int, corpus: Path, out: Path) -> dict:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    train = [sys.executable, "-m", "rnn_gpu", "train", str(corpus), "--out", str(out), "--hidden", str(H),
             "--batch", str(B), "--seq", str(T), "--steps", str(steps), "--val-fraction", "0", "--log-every", "10",
             "--backend", "numpy", "--quiet", "--force"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "SLURM_"))}
    subprocess.run([str(mpiexec), "-n", str(ranks), *train], check=True, env=env, capture_output=True, text=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]
    return {"ranks": ranks, "hidden": H, "batch": B, "seq": T,
            "chars_per_s": statistics.median(r["symbols_per_s"] for r in records),
            "allreduce_share": statistics.median(r.get("allreduce_share", 0.0) for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--configs", default="256x32x64,512x64x64")
    args = parser.parse_args()
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-\n"))[:65]
        corpus.write_text("".join(np.random.default_rng(0).choice(letters, size=2_000_000)))
        for config in args.configs.split(","):
            H, B, T = (int(v) for v in config.split("x"))
            for ranks in (int(r) for r in args.ranks.split(",")):
                rows.append(run_point(ranks, H, B, T, args.steps, corpus, Path(tmp) / f"run-{config}-{ranks}"))
                print(json.dumps(rows[-1]), file=sys.stderr)
    for row in rows:
        one = next(r for r in rows if r["ranks"] == 1 and r["hidden"] == row["hidden"] and r["batch"] == row["batch"])
        row["speedup"] = row["chars_per_s"] / one["chars_per_s"]
    print(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
