"""`python -m bench.dropout_masks`: what dropout costs a training step on the
CPU, side by side in one process, the variants interleaved round by round so
that a busy machine slows them alike.

- `host generator`: the masks as they were drawn before rnn_gpu/dropout.py
  (NumPy's Generator, float32 uniforms against p, all B streams), applied
  in the forward pass (a masked copy of each layer's states) and again in
  the backward pass (G *= mask);
- `counter, kept`: the backend's `dropout` and `dropout_grad_` (the
  counter-based masks, the forward pass's mask kept for the backward pass;
  `--backend opencl`: on the kernels, which make the masks);
- `counter, recomputed`: the same with the mask recomputed for the backward pass;
- and the masks alone, for the choice of hash: the host generator, the
  chosen hash, and Philox4x32-10 for every unit at 16 and at 32 bits a decision.

Prints one JSON object: milliseconds a step (the minimum and the median of
the rounds) for each variant, and the ratio of each to the host generator.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from rnn_gpu import dropout, get_backend
from rnn_gpu.dropout import Dropout


def host_generator_masks(rng, p: float, layers: int, shape: tuple, dtype) -> list:
    """The masks as rnn_gpu drew them before: on the host, from a Generator."""
    scale = np.dtype(dtype).type(1 / (1 - p))
    masks = []
    for _ in range(layers):
        mask = (rng.random(shape, dtype=np.float32) >= p).astype(dtype)
        mask *= scale
        masks.append(mask)
    return masks


def philox_per_unit(drop: Dropout, layer: int, shape: tuple, bits: int) -> np.ndarray:
    """The candidate not taken: Philox4x32-10 for every 128 / bits units, counter (unit group, t, stream, step)."""
    T, B, H = shape
    per_call = 128 // bits
    groups = -(-H // per_call)
    counter = (np.arange(groups)[None, None, :], np.arange(T)[:, None, None],
               np.arange(drop.first_stream, drop.first_stream + B)[None, :, None], drop.step & 0xFFFFFFFF)
    words = np.stack(dropout.philox4x32((drop.seed, layer), counter), axis=-1)
    values = words.view(np.uint16 if bits == 16 else np.uint32).reshape(T, B, -1)[..., :H]
    return values >= (drop.threshold if bits == 16 else np.uint32(round(drop.p * 2**32)))


def make_variants(shape: tuple, layers: int, p: float, dtype, backend: str = "numpy"):
    rng = np.random.default_rng(0)
    states = [rng.uniform(-1, 1, shape).astype(dtype) for _ in range(layers)]
    grads = [rng.normal(size=shape).astype(dtype) for _ in range(layers)]
    generator = np.random.default_rng(1)
    be = get_backend(backend)
    step = [0]

    def key():
        step[0] += 1
        return Dropout(p, 1, step[0])

    def host_generator():
        masks = host_generator_masks(generator, p, layers, shape, dtype)
        for Hs, G, mask in zip(states, grads, masks, strict=True):
            _ = Hs * mask
            G *= mask

    def counter(keep: bool):
        def run():
            be.keep_dropout_masks = keep
            drop = key()
            for k, (Hs, G) in enumerate(zip(states, grads, strict=True), start=1):
                _, saved = be.dropout(Hs, drop, k)
                be.dropout_grad_(G, drop, k, saved)
        return run

    def masks_only(make):
        def run():
            drop = key()
            for k in range(1, layers + 1):
                make(drop, k)
        return run

    return {
        "host generator": host_generator,
        "counter, kept": counter(True),
        "counter, recomputed": counter(False),
        "masks only: host generator": lambda: host_generator_masks(generator, p, layers, shape, dtype),
        "masks only: counter (chosen hash)": masks_only(lambda d, k: dropout.mask(d, k, shape, dtype)),
        "masks only: Philox every unit, 16-bit decisions": masks_only(
            lambda d, k: np.multiply(philox_per_unit(d, k, shape, 16), d.scale(dtype), dtype=dtype)),
        "masks only: Philox every unit, 32-bit decisions": masks_only(
            lambda d, k: np.multiply(philox_per_unit(d, k, shape, 32), d.scale(dtype), dtype=dtype)),
    }


def measure(variants: dict, rounds: int) -> dict:
    times = {name: [] for name in variants}
    for run in variants.values():
        run()  # warm-up
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: {"min_ms": 1e3 * min(t), "median_ms": 1e3 * statistics.median(t)} for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dropout_masks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--backend", choices=("numpy", "opencl"), default="numpy",
                        help="the backend whose dropout ops the counter rows time")
    args = parser.parse_args(argv)
    shape = (args.seq, args.batch, args.hidden)
    results = measure(make_variants(shape, args.layers, args.dropout, np.float32, args.backend), args.rounds)
    base = {"": results["host generator"], "masks only: ": results["masks only: host generator"]}
    for name, r in results.items():
        reference = base["masks only: " if name.startswith("masks only: ") else ""]
        r.update(min_ratio=r["min_ms"] / reference["min_ms"], median_ratio=r["median_ms"] / reference["median_ms"])
    report = {"T_B_H": shape, "layers": args.layers, "backend": args.backend, "dropout": args.dropout,
              "dtype": "float32", "rounds": args.rounds, "numpy": np.__version__,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "load_average": os.getloadavg(), "ms_per_step": results}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
