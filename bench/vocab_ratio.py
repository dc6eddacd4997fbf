"""A training step at a word-sized vocabulary, ours (NumPy) against
PyTorch's nn.Embedding + nn.RNN + nn.Linear on the CPU, side by side in one
process. Not a test: a measurement.

    python -m bench.vocab_ratio [--hidden 256] [--batch 32] [--seq 64] [--vocab 8000] [--seconds 20] [--runs 3]

Each run alternates the two systems (rnn_gpu.bench.timing.alternate) and
reports the ratio of their median step times; the load average before and
after each run is recorded, since the machine may be shared. Prints one
JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from rnn_gpu.bench import machine, make_system
from rnn_gpu.bench.timing import alternate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per system and run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    H, B, T, V = args.hidden, args.batch, args.seq, args.vocab
    systems = [make_system(name, H, B, T, V) for name in ("numpy", "torch-cpu")]
    runs = []
    for _ in range(args.runs):
        load_before = os.getloadavg()
        times = alternate(systems, args.seconds)
        runs.append({"step_ms": {k: v * 1e3 for k, v in times.items()},
                     "torch_over_ours": times["torch-cpu"] / times["numpy"],
                     "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"machine": machine(), "hidden": H, "batch": B, "seq": T, "vocab": V,
                      "systems": {s.name: s.device for s in systems}, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
