"""Validation time against the size of the held-out part: with the default
--val-chars cap it stays flat; without one it grows with the part. Not a
test: a measurement.

    python -m bench.validation_time [--hidden 256] [--layers 1] [--sizes 250000,1000000,4000000,16000000]

Times `train.evaluate` on random held-out parts of each size (vocabulary 65,
the default batch and sequence), capped and uncapped (uncapped only up to
4 M characters), and prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from rnn_gpu import CharRNN, get_backend
from rnn_gpu.bench import machine
from rnn_gpu.training import TrainConfig, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--sizes", default="250000,1000000,4000000,16000000")
    parser.add_argument("--uncapped-up-to", type=int, default=4_000_000)
    args = parser.parse_args()
    cfg = TrainConfig(hidden=args.hidden, layers=args.layers)
    model = CharRNN(65, cfg.hidden, get_backend("numpy"), layers=cfg.layers)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        data = np.random.default_rng(size).integers(0, 65, size=size).astype(np.uint8)
        for cap in (cfg.val_chars, 0):
            if cap == 0 and size > args.uncapped_up_to:
                continue
            start = time.perf_counter()
            chars = evaluate(model, data, cfg.batch, cfg.seq, cap).symbols
            rows.append({"held_out_chars": size, "val_chars_cap": cap, "evaluated_chars": chars,
                         "seconds": round(time.perf_counter() - start, 3)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"machine": machine(), "hidden": cfg.hidden, "layers": cfg.layers, "batch": cfg.batch,
                      "seq": cfg.seq, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
