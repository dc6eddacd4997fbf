"""The one set of timing helpers: `rnn-gpu bench`, bench/ and the GPU check all use these.

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


def timed_step(system) -> float:
    """Seconds of one step of a `systems.System`, synchronised."""
    start = time.perf_counter()
    system.step()
    system.sync()
    return time.perf_counter() - start


def alternate(systems: list, seconds: float, rounds: int = 5) -> dict[str, float]:
    """Median seconds per step of each system, the systems taking turns in
    every round so that machine noise falls on all of them alike. Warm-up
    included, it all takes about `seconds` per system: the two warm-up steps
    (compilation, caches, memory pools) size the rounds to the time left, and
    rounds stop at the deadline (after at least one)."""
    deadline = time.perf_counter() + seconds * len(systems)
    for s in systems:
        timed_step(s)
    step_seconds = {s.name: timed_step(s) for s in systems}
    per_round = max(0.0, deadline - time.perf_counter()) / rounds / len(systems)
    counts = {name: max(1, int(per_round / max(t, 1e-6))) for name, t in step_seconds.items()}
    times = {s.name: [] for s in systems}
    for r in range(rounds):
        if r and time.perf_counter() > deadline:
            break
        for s in systems:
            s.sync()
            start = time.perf_counter()
            for _ in range(counts[s.name]):
                s.step()
            s.sync()
            times[s.name].append((time.perf_counter() - start) / counts[s.name])
    return {name: statistics.median(t) for name, t in times.items()}


def sgemm_gflops(backend, B: int, H: int, seconds: float = 0.3) -> float:
    """The measured float32 GEMM rate at the recurrence's shape, (B, H) by (H, H)."""
    rng = np.random.default_rng(0)
    a, b = (backend.asarray(rng.uniform(-1, 1, shape), dtype="float32") for shape in ((B, H), (H, H)))
    repeats = max(3, int(seconds / max(median_seconds(lambda: a @ b, backend, repeats=3), 1e-7)))
    return 2 * B * H * H / median_seconds(lambda: a @ b, backend, repeats=repeats) / 1e9
