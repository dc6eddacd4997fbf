"""`rnn-gpu bench`: training throughput, recurrence speed and peak memory.

One configuration on one system, or with --compare the whole grid across
every system that can run here. Timings are medians over rounds that
alternate the systems, warm-up excluded, device work synchronised before the
clock is read; a comparison is a ratio from one such run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..backends import BackendUnavailable
from ..fileio import atomic_write, check_writable, make_directory
from .baselines import time_torch_recurrence
from .memory import isolated_peak_memory, peak_memory_bytes
from .report import format_table, machine, markdown_report, plot_compare
from .systems import COMPARE_CONFIGS, SYSTEMS, VOCAB, System, flops_per_char, make_system
from .timing import alternate, sgemm_gflops, time_recurrence


def result_row(system: System, seconds_per_step: float, H: int, B: int, T: int, layers: int = 1,
               time_left: float | None = None, vocab: int = VOCAB, dropout: float = 0.0) -> dict:
    """`time_left`: the recurrence timings (a few steps' worth) run only if
    they fit; the GEMM rate always, in what is left. `system` and `backend`
    name the same thing (`backend`: the older key)."""
    chars_per_s = system.chars_per_step / seconds_per_step
    gflops = chars_per_s * flops_per_char(H, vocab, layers) / 1e9
    row = {"system": system.name, "backend": system.name, "device": system.device, "hidden": H, "batch": B,
           "seq": T, "layers": layers, "vocab": vocab, "dropout": dropout, "chars_per_s": chars_per_s,
           "step_ms": seconds_per_step * 1e3, "gflop_per_s": gflops,
           "recurrence_fwd_us_per_step": None, "recurrence_bwd_us_per_step": None}
    start = time.perf_counter()
    recurrence_fits = time_left is None or time_left > 6 * seconds_per_step
    if system.backend is not None and recurrence_fits:
        rec = time_recurrence(system.backend, H, B, T, repeats=5 if time_left is None else 3)
        row["recurrence_fwd_us_per_step"] = rec["fwd_us_per_step"]
        row["recurrence_bwd_us_per_step"] = rec["bwd_us_per_step"]
    elif system.torch is not None and recurrence_fits:
        rec = time_torch_recurrence(H, B, T, *system.torch, repeats=5 if time_left is None else 3)
        row["recurrence_fwd_us_per_step"] = rec["fwd_us_per_step"]
        row["recurrence_bwd_us_per_step"] = rec["bwd_us_per_step"]
    if system.torch is not None:  # what cuDNN runs for the step's nn.RNN (the recurrence alone: nn.RNN(H, H))
        import torch

        from .baselines import TORCH_PRECISIONS, rnn_input_size
        from .cudnn_algo import torch_cudnn_algo

        device, dtype = system.torch[0], TORCH_PRECISIONS[system.torch[1]][0]
        row["cudnn_algo"] = torch_cudnn_algo(torch, device, dtype, H, B, T, layers, rnn_input_size(vocab, H))
        row["recurrence_cudnn_algo"] = torch_cudnn_algo(torch, device, dtype, H, B, T)
    if system.backend is not None:  # a few GEMMs of the recurrence's shape: less than a step
        budget = 0.3 if time_left is None else min(0.3, max(0.0, time_left - (time.perf_counter() - start)) / 4)
        row["sgemm_gflop_per_s"] = sgemm_gflops(system.backend, B, H, seconds=budget)
        row["sgemm_fraction"] = gflops / row["sgemm_gflop_per_s"]
    return row


def run_one(name: str, H: int, B: int, T: int, seconds: float, layers: int = 1, dropout: float = 0.0,
            vocab: int = VOCAB) -> dict:
    """One system, one configuration: the `rnn-gpu bench` row."""
    system = make_system(name, H, B, T, vocab, layers=layers, dropout=dropout)  # allocation: before the clock
    deadline = time.perf_counter() + seconds
    seconds_per_step = alternate([system], 0.75 * max(0.0, deadline - time.perf_counter()))[name]
    row = result_row(system, seconds_per_step, H, B, T, layers, time_left=deadline - time.perf_counter(),
                     vocab=vocab, dropout=dropout)
    row["peak_mem_bytes"] = peak_memory_bytes(system)
    return row


def compare(out: Path, seconds: float, systems=SYSTEMS, configs=COMPARE_CONFIGS, log=print) -> dict:
    """The whole grid of (H, B, T[, layers[, dropout]]): writes out/bench.json, out/bench.md and out/bench.png."""
    make_directory(out)
    check_writable(out)  # now, not after the whole grid has run
    result = {"machine": machine(), "seconds_per_system": seconds, "configs": [], "skipped": {}}
    for config in configs:
        H, B, T, L, p = (*config, *(1, 0.0)[len(config) - 3:])  # layers 1 and no dropout unless given
        ready = []
        for name in systems:
            try:
                ready.append(make_system(name, H, B, T, layers=L, dropout=p))
            except BackendUnavailable as exc:
                result["skipped"][name] = str(exc)
        times = alternate(ready, seconds)
        rows = [result_row(s, times[s.name], H, B, T, L, dropout=p) for s in ready]
        for row in rows:
            row["peak_mem_bytes"] = isolated_peak_memory(row["backend"], H, B, T, L, p)
        result["configs"].append({"hidden": H, "batch": B, "seq": T, "layers": L, "dropout": p, "rows": rows})
        log(format_table(rows))
    atomic_write(out / "bench.json", lambda f: f.write(json.dumps(result, indent=1).encode()))
    atomic_write(out / "bench.md", lambda f: f.write(markdown_report(result).encode()))
    plot_compare(result, out / "bench.png")
    return result
