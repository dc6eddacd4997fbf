"""Timing helpers shared by `rnn-gpu bench`, bench/ and the GPU check.

A timing synchronises the device before reading the clock, excludes warm-up
and reports the median over repeats.
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def median_seconds(fn, backend, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    backend.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def recurrence_inputs(backend, H: int, B: int, T: int, dtype="float32", seed: int = 0):
    """Random (P, W, h0, G) on the backend: never zeros, which can time faster."""
    rng = np.random.default_rng(seed)
    P = rng.uniform(-1, 1, (T, B, H))
    W = rng.uniform(-1, 1, (H, H)) / np.sqrt(H)
    h0 = rng.uniform(-1, 1, (B, H))
    G = rng.uniform(-1, 1, (T, B, H))
    return [backend.asarray(a, dtype=dtype) for a in (P, W, h0, G)]


def time_recurrence(backend, H: int, B: int, T: int, dtype="float32", repeats: int = 5,
                    forward=None, backward=None) -> dict:
    """µs per time step of the forward and backward recurrence.

    `forward(P, W, h0)` and `backward(G, Hs, h0, W)` default to the backend's
    own ops; pass others to time a specific kernel variant."""
    forward = forward or backend.recurrence_forward
    backward = backward or backend.recurrence_backward
    P, W, h0, G = recurrence_inputs(backend, H, B, T, dtype)
    Hs = forward(P, W, h0)
    fwd = median_seconds(lambda: forward(P, W, h0), backend, repeats)
    bwd = median_seconds(lambda: backward(G, Hs, h0, W), backend, repeats)
    return {"fwd_us_per_step": fwd / T * 1e6, "bwd_us_per_step": bwd / T * 1e6}
