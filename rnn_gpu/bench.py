"""`rnn-gpu bench`: training throughput, recurrence speed and peak memory.

One configuration on one system, or with --compare the whole grid across
every system that can run here. Timings are medians over rounds that
alternate the systems, warm-up excluded, device work synchronised before the
clock is read; a comparison is a ratio from one such run.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import BackendUnavailable, get_backend
from .baselines import make_seed_step, make_torch_step, torch_unavailable_reason
from .model import CharRNN, dropout_masks
from .optim import Adagrad
from .timing import median_seconds, time_recurrence

SYSTEMS = ("numpy", "cupy", "cupy-cublas", "opencl", "torch-cpu", "torch-cuda", "seed")
OUR_SYSTEMS = ("numpy", "cupy", "cupy-cublas", "opencl")
MAIN_CONFIGS = ((128, 32, 64), (512, 64, 64), (1024, 128, 50))
SEED_SHAPE = (100, 64, 25)  # the seed's H and T, batched for our systems; the seed itself runs B=1
# --compare's grid: (H, B, T, layers); the main configurations with one layer and with two.
COMPARE_CONFIGS = (*((*c, 1) for c in MAIN_CONFIGS), (*SEED_SHAPE, 1), *((*c, 2) for c in MAIN_CONFIGS))
VOCAB = 65  # tiny-shakespeare's


@dataclass
class System:
    name: str
    step: object  # one training step
    sync: object
    chars_per_step: int
    backend: object = None  # ours only
    device: str = ""


def our_backend(name: str):
    if name == "cupy-cublas":
        from .backends.cupy_backend import CupyBackend

        get_backend("cupy")  # raises BackendUnavailable with the reason
        return CupyBackend(use_kernels=False)
    return get_backend(name)


def make_system(name: str, H: int, B: int, T: int, vocab: int = VOCAB, seed: int = 0, layers: int = 1,
                dropout: float = 0.0) -> System:
    """Raises BackendUnavailable when `name` cannot run here."""
    if name in OUR_SYSTEMS:
        backend = our_backend(name)
        model = CharRNN(vocab, H, backend, dtype="float32", seed=seed, layers=layers)
        optimizer = Adagrad(model.layout, 0.1, backend, model.dtype)
        rng = np.random.default_rng(seed)
        data = backend.asarray(rng.integers(0, vocab, size=(T + 1, B)))
        state = {"h": model.zero_state(B)}

        def step():
            masks = dropout_masks(rng, dropout, layers, (T, B, H), backend, model.dtype)
            loss, grads, state["h"] = model.loss_and_grads(data[:-1], data[1:], state["h"], masks)
            optimizer.step(model.flat, model.grad_flat, clip=5.0)

        return System(name, step, backend.synchronize, B * T, backend, backend.device_name())
    if name in ("torch-cpu", "torch-cuda"):
        device = name.split("-")[1]
        reason = torch_unavailable_reason(device)
        if reason:
            raise BackendUnavailable(f"{name}: {reason}")
        step, sync = make_torch_step(H, B, T, vocab, device, seed, layers, dropout)
        import torch

        label = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        return System(name, step, sync, B * T, device=f"torch {torch.__version__}, {label}")
    if name == "seed":
        if layers != 1:
            raise BackendUnavailable("seed: the original program has one layer")
        step, sync = make_seed_step(H, T, vocab, seed)
        return System(name, step, sync, T, device="NumPy float64, batch 1")
    raise ValueError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")


def timed_step(system: System) -> float:
    start = time.perf_counter()
    system.step()
    system.sync()
    return time.perf_counter() - start


def alternate(systems: list[System], seconds: float, rounds: int = 5) -> dict[str, float]:
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


def peak_rss_bytes() -> int:
    """This process's own peak resident memory. VmHWM, not ru_maxrss: on
    Linux a child's ru_maxrss starts from its parent's at fork."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_bytes(system: System) -> int:
    """Device memory for GPU systems, else this process's peak RSS."""
    if system.name.startswith("cupy"):
        return int(system.backend.xp.get_default_memory_pool().total_bytes())
    if system.name == "torch-cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return peak_rss_bytes()


def flops_per_char(H: int, vocab: int = VOCAB, layers: int = 1) -> float:
    """The GEMM work of one training character: forward, the L recurrences
    (2H^2 each), the L-1 input projections of layers 2..L (2H^2 each) and the
    output layer (2VH); backward twice that. Gathers, element-wise work and
    the one-hot dU are left out."""
    return 3.0 * (2 * H * H * (2 * layers - 1) + 2 * vocab * H)


def sgemm_gflops(backend, B: int, H: int, seconds: float = 0.3) -> float:
    """The measured float32 GEMM rate at the recurrence's shape, (B, H) by (H, H)."""
    rng = np.random.default_rng(0)
    a, b = (backend.asarray(rng.uniform(-1, 1, shape), dtype="float32") for shape in ((B, H), (H, H)))
    repeats = max(3, int(seconds / max(median_seconds(lambda: a @ b, backend, repeats=3), 1e-7)))
    return 2 * B * H * H / median_seconds(lambda: a @ b, backend, repeats=repeats) / 1e9


def result_row(system: System, seconds_per_step: float, H: int, B: int, T: int, layers: int = 1,
               time_left: float | None = None) -> dict:
    """`time_left`: the recurrence and GEMM timings run only if they fit (they cost a few steps)."""
    chars_per_s = system.chars_per_step / seconds_per_step
    gflops = chars_per_s * flops_per_char(H, VOCAB, layers) / 1e9
    row = {"backend": system.name, "device": system.device, "hidden": H, "batch": B, "seq": T, "layers": layers,
           "chars_per_s": chars_per_s, "step_ms": seconds_per_step * 1e3, "gflop_per_s": gflops,
           "recurrence_fwd_us_per_step": None, "recurrence_bwd_us_per_step": None}
    if system.backend is not None and (time_left is None or time_left > 6 * seconds_per_step):
        rec = time_recurrence(system.backend, H, B, T, repeats=5 if time_left is None else 3)
        row["recurrence_fwd_us_per_step"] = rec["fwd_us_per_step"]
        row["recurrence_bwd_us_per_step"] = rec["bwd_us_per_step"]
        row["sgemm_gflop_per_s"] = sgemm_gflops(system.backend, B, H)
        row["sgemm_fraction"] = gflops / row["sgemm_gflop_per_s"]
    return row


def run_one(name: str, H: int, B: int, T: int, seconds: float, layers: int = 1, dropout: float = 0.0) -> dict:
    """One system, one configuration: the `rnn-gpu bench` row."""
    deadline = time.perf_counter() + seconds
    system = make_system(name, H, B, T, layers=layers, dropout=dropout)
    seconds_per_step = alternate([system], 0.75 * max(0.0, deadline - time.perf_counter()))[name]
    row = result_row(system, seconds_per_step, H, B, T, layers, time_left=deadline - time.perf_counter())
    row["peak_mem_bytes"] = peak_memory_bytes(system)
    return row


def machine() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    return {"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}


def isolated_peak_memory(name: str, H: int, B: int, T: int, layers: int = 1) -> int | None:
    """Peak memory of one system measured alone, in a fresh process."""
    cmd = [sys.executable, "-m", "rnn_gpu", "bench", "--backend", name, "--hidden", str(H), "--batch", str(B),
           "--seq", str(T), "--layers", str(layers), "--seconds", "0.5", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)["peak_mem_bytes"]


def compare(out: Path, seconds: float, systems=SYSTEMS, configs=COMPARE_CONFIGS, log=print) -> dict:
    """The whole grid of (H, B, T[, layers]): writes out/bench.json, out/bench.md and out/bench.png."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "seconds_per_system": seconds, "configs": [], "skipped": {}}
    for config in configs:
        H, B, T, L = (*config, 1)[:4]
        ready = []
        for name in systems:
            try:
                ready.append(make_system(name, H, B, T, layers=L))
            except BackendUnavailable as exc:
                result["skipped"][name] = str(exc)
        times = alternate(ready, seconds)
        rows = [result_row(s, times[s.name], H, B, T, L) for s in ready]
        for row in rows:
            row["peak_mem_bytes"] = isolated_peak_memory(row["backend"], H, B, T, L)
        result["configs"].append({"hidden": H, "batch": B, "seq": T, "layers": L, "rows": rows})
        log(format_table(rows))
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    (out / "bench.md").write_text(markdown_report(result))
    plot_compare(result, out / "bench.png")
    return result


def format_table(rows: list[dict]) -> str:
    head = (f"{'system':12} {'H':>5} {'B':>4} {'T':>4} {'L':>2} {'chars/s':>12} {'step ms':>9} {'GFLOP/s':>8} "
            f"{'of sgemm':>8} {'fwd us/t':>9} {'bwd us/t':>9} {'peak MB':>8}")
    lines = [head]

    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"

    for r in rows:
        mem = r.get("peak_mem_bytes")
        lines.append(f"{r['backend']:12} {r['hidden']:5} {r['batch']:4} {r['seq']:4} {r.get('layers', 1):2} "
                     f"{r['chars_per_s']:12,.0f} {r['step_ms']:9.2f} {r['gflop_per_s']:8.1f} "
                     f"{fmt(r.get('sgemm_fraction'), '8.0%'):>8} "
                     f"{fmt(r['recurrence_fwd_us_per_step'], '9.1f'):>9} "
                     f"{fmt(r['recurrence_bwd_us_per_step'], '9.1f'):>9} {fmt(mem and mem / 2**20, '8.0f'):>8}")
    return "\n".join(lines)


def markdown_report(result: dict) -> str:
    m = result["machine"]
    lines = [f"Measured {m['date_utc']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
             f"NumPy {m['numpy']}. Each system's time is the median of alternating rounds; "
             "ratios are against the NumPy backend in the same run.", ""]
    devices = {r["backend"]: r["device"] for cfg in result["configs"] for r in cfg["rows"]}
    lines += [f"- {name}: {device}" for name, device in devices.items()]
    lines += ["", "| H | B | T | layers | system | chars/s | vs numpy | step ms | GFLOP/s | of sgemm | peak MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cfg in result["configs"]:
        base = next((r["chars_per_s"] for r in cfg["rows"] if r["backend"] == "numpy"), None)
        for r in cfg["rows"]:
            ratio = f"{r['chars_per_s'] / base:.2f}x" if base else "-"
            mem = f"{r['peak_mem_bytes'] / 2**20:.0f}" if r.get("peak_mem_bytes") else "-"
            of_sgemm = f"{r['sgemm_fraction']:.0%}" if r.get("sgemm_fraction") else "-"
            lines.append(f"| {cfg['hidden']} | {cfg['batch'] if r['backend'] != 'seed' else 1} | {cfg['seq']} | "
                         f"{cfg.get('layers', 1)} | {r['backend']} | {r['chars_per_s']:,.0f} | {ratio} | "
                         f"{r['step_ms']:.2f} | {r['gflop_per_s']:.1f} | {of_sgemm} | {mem} |")
    if result["skipped"]:
        lines += ["", "Not run here: " + "; ".join(f"{k} ({v})" for k, v in sorted(result["skipped"].items()))]
    return "\n".join(lines) + "\n"


def plot_compare(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    configs = result["configs"]
    names = sorted({r["backend"] for c in configs for r in c["rows"]}, key=SYSTEMS.index)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [next((r["chars_per_s"] for r in c["rows"] if r["backend"] == name), 0) for c in configs]
        ax.bar([x + i * width for x in range(len(configs))], values, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(configs))],
                  [f"H={c['hidden']} B={c['batch']} T={c['seq']}" + (f" L={c['layers']}" if c.get("layers", 1) > 1
                                                                      else "") for c in configs], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("training characters / s")
    ax.set_title(f"rnn_gpu training throughput ({result['machine']['date_utc'][:10]}, {result['machine']['cpu']})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
