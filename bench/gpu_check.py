"""The GPU check: GPU tests, per-variant correctness, the recurrence
benchmark, the training-step comparison and what users run (`rnn-gpu train`
with and without dropout beside PyTorch), written as one JSON file under
bench/results/.

Run through bench/gpu_check.sh on a machine with CuPy and a CUDA GPU; it
needs no network. Every number in the file comes from this run.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from bench.recurrence_long import long_sequence_rows
from rnn_gpu.bench.timing import median_seconds, recurrence_inputs, time_recurrence

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = [(128, 64), (128, 32), (512, 64), (512, 128), (1024, 64), (1024, 128), (2048, 64)]
T = 64
VARIANTS = ("small", "tiled", "persistent", "per_step")


def run_gpu_tests(workdir: Path) -> dict:
    junit = workdir / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
           f"--junitxml={junit}", str(ROOT / "tests")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
                node = case.find("failure") if case.find("failure") is not None else case.find("error")
                failures.append({"test": name, "message": (node.get("message") or "")[:500]})
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    return {"returncode": proc.returncode, **counts, "failures": failures, "tail": proc.stdout[-3000:]}


def environment(cupy) -> dict:
    from rnn_gpu.backends.cupy_backend import cuda_device_name

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": cuda_device_name(cupy),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "multiprocessors": props["multiProcessorCount"],
        "shared_per_block_optin": props.get("sharedMemPerBlockOptin"),
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def measured_fp32_flops(cupy, backend) -> float:
    n = 8192
    a = cupy.random.uniform(-1, 1, (n, n), dtype=cupy.float32)
    b = cupy.random.uniform(-1, 1, (n, n), dtype=cupy.float32)
    seconds = median_seconds(lambda: a @ b, backend, repeats=5)
    return 2 * n**3 / seconds


def persistent_step_latency_us(runner, backend, multiprocessors: int) -> float:
    """The fixed cost of one persistent step: the kernel with one unit per
    block and almost no arithmetic (staging, finishing, the grid barrier).
    `python -m bench.barrier_probe` measures the barrier alone."""
    from rnn_gpu.kernels.plan import Plan, units_shared_bytes

    H, B, steps = multiprocessors, 1, 256
    plan = Plan("persistent", H, 32, units_shared_bytes(H, 1, 1, 1, H, 4), groups=1, parts=1, width=1,
                slice_rows=1, chunk=H)
    P, W, h0, _ = recurrence_inputs(backend, H, B, steps)
    seconds = median_seconds(lambda: runner.forward(P, W, h0, plan=plan), backend, repeats=5)
    return seconds / steps * 1e6


def cublas_backend():
    """The CuPy backend without the kernels: the per-step baseline, and the
    array and timing helper for the rest."""
    from rnn_gpu.backends.cupy_backend import CupyBackend

    return CupyBackend(use_kernels=False)


def correctness(runner, backend, H, B, variant) -> dict:
    """Relative error of one variant against the float64 NumPy loop (the tests' own harness)."""
    from rnn_gpu.kernels.check import variant_errors

    return variant_errors(runner, np.random.default_rng(H * 1000 + B), H, B, 16, np.float32, variant)


def benchmark(runner, backend, flops: float, configs=CONFIGS, variants=VARIANTS, T: int = T) -> list:
    """Per configuration: the per-step loop of `backend` (cuBLAS on CuPy),
    then each kernel variant of `runner` with its tuned plan, its error
    against the float64 loop and its µs per step."""
    rows = []
    for H, B in configs:
        floor_us = 2 * B * H * H / flops * 1e6
        baseline = time_recurrence(backend, H, B, T)
        rows.append({"H": H, "B": B, "T": T, "system": "cublas_per_step", **baseline, "flop_floor_us": floor_us})
        P, W, h0, _ = recurrence_inputs(backend, H, B, T)
        for variant in variants:
            model_plan = runner.plan(H, B, np.float32, variant)
            plan = runner.tuned_plan(P, W, P, h0, False, variant)
            row = {"H": H, "B": B, "T": T, "system": variant, "flop_floor_us": floor_us}
            if plan is None:
                rows.append({**row, "status": "does not fit"})
                continue
            row["plan"] = dataclasses.asdict(plan)
            row["cost_model_plan"] = dataclasses.asdict(model_plan)
            try:
                row.update(correctness(runner, backend, H, B, variant))

                def fwd(P, W, h0, plan=plan):
                    return runner.forward(P, W, h0, plan=plan)

                def bwd(G, Hs, h0, W, plan=plan):
                    return runner.backward(G, Hs, W, plan=plan)

                row.update(time_recurrence(backend, H, B, T, forward=fwd, backward=bwd))
                row["speedup_fwd_vs_cublas"] = baseline["fwd_us_per_step"] / row["fwd_us_per_step"]
                row["speedup_bwd_vs_cublas"] = baseline["bwd_us_per_step"] / row["bwd_us_per_step"]
                row["fwd_over_floor"] = row["fwd_us_per_step"] / floor_us
                row["status"] = "ok"
            except Exception as exc:  # recorded, not hidden: the check reports what failed
                row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


QUICK_CONFIGS = [(128, 64), (512, 64), (1024, 128)]
TORCH_LENGTHS = (64, 1024)


def torch_recurrence_rows(device: str, configs, lengths=TORCH_LENGTHS, precisions=None) -> list:
    """PyTorch's recurrence alone (nn.RNN(H, H), cuDNN on a GPU) in each
    precision, µs per step forward and backward: the kernel-to-kernel baseline."""
    from rnn_gpu.bench.baselines import TORCH_PRECISIONS, time_torch_recurrence, torch_unavailable_reason

    reason = torch_unavailable_reason(device)
    if reason:
        return [{"system": "torch", "status": f"not run: {reason}"}]
    precisions = precisions or (list(TORCH_PRECISIONS) if device == "cuda" else ["fp32"])
    rows = []
    for H, B in configs:
        for T_ in lengths:
            for precision in precisions:
                row = {"H": H, "B": B, "T": T_, "system": f"torch-{device}-{precision}"}
                try:
                    row.update(time_torch_recurrence(H, B, T_, device, precision, repeats=3), status="ok")
                except Exception as exc:  # recorded, not hidden
                    row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def training_step_rows(systems, configs, seconds: float) -> dict:
    """The training-step comparison of `rnn-gpu bench --compare`, in memory."""
    import tempfile

    from rnn_gpu import bench

    with tempfile.TemporaryDirectory() as tmp:
        result = bench.compare(Path(tmp), seconds, systems=systems, configs=configs,
                               log=lambda text: print(text, flush=True))
    return result


TRAINER_CONFIGS = [(1, 256, 32, 64), (2, 1024, 128, 64)]  # (layers, H, B, T): the main job, the quality recipe
TRAINER_DROPOUTS = (0.0, 0.3)
TRAINER_VOCAB = 65


def train_command_row(backend: str, layers: int, H: int, B: int, T: int, dropout: float, steps: int,
                      workdir: Path) -> dict:
    """`rnn-gpu train` itself, in a fresh process, on random text: the median
    chars/s of its log lines after the first fifth (compilation, tuning and
    warm-up excluded). Adagrad at lr 0.1 and the clip at 5, as the baselines."""
    rng = np.random.default_rng(0)
    run = workdir / f"train-{backend}-{layers}x{H}-{B}-{T}-{dropout}"
    corpus = workdir / f"random-{B}-{T}.txt"  # each stream wraps every 60 steps; 1% held out
    if not corpus.exists():
        symbols = np.array([chr(32 + i) for i in range(TRAINER_VOCAB)])
        corpus.write_text("".join(symbols[rng.integers(0, TRAINER_VOCAB, size=int(B * (T * 60 + 1) * 1.02))]))
    cmd = [sys.executable, "-m", "rnn_gpu", "train", str(corpus), "--out", str(run), "--backend", backend,
           "--layers", str(layers), "--hidden", str(H), "--batch", str(B), "--seq", str(T), "--dropout", str(dropout),
           "--steps", str(steps), "--optimizer", "adagrad", "--lr", "0.1", "--log-every", "10", "--val-fraction",
           "0.01", "--val-chars", "10000", "--eval-every", str(steps), "--checkpoint-every", str(steps), "--quiet",
           "--force"]
    row = {"system": f"rnn-gpu train --backend {backend}", "layers": layers, "hidden": H, "batch": B, "seq": T,
           "dropout": dropout, "steps": steps}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "RNN_GPU_CACHE": str(workdir / "cache")})
    if proc.returncode != 0:
        return {**row, "chars_per_s": None, "status": "error", "error": proc.stderr[-500:]}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["symbols_per_s"] for r in records if r["step"] > steps // 5 and r["step"] % 10 == 0]
    return {**row, "chars_per_s": float(np.median(rates)), "status": "ok"}


def trainer_rows(backend: str, torch_system: str, configs=TRAINER_CONFIGS, dropouts=TRAINER_DROPOUTS,
                 steps: int = 200, seconds: float = 2.0, workdir: Path | None = None) -> list:
    """Per configuration and dropout rate: `rnn-gpu train`'s own rate, the
    trainer's step as `rnn-gpu bench` times it, and PyTorch's `nn.RNN` with
    the same recipe (dropout between layers and on the head's input). Every
    row carries system, layers, hidden, batch, seq, dropout and chars_per_s."""
    import tempfile

    from rnn_gpu import bench

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layers, H, B, T in configs:
            for dropout in dropouts:
                rows.append(train_command_row(backend, layers, H, B, T, dropout, steps, Path(workdir or tmp)))
                for system in (backend, torch_system):
                    try:
                        timed = bench.run_one(system, H, B, T, seconds, layers=layers, dropout=dropout)
                        rows.append({**{k: timed[k] for k in ("system", "layers", "hidden", "batch", "seq",
                                                              "dropout", "chars_per_s", "step_ms", "device")},
                                     "system": f"rnn-gpu bench --backend {system}" if system == backend else system,
                                     "status": "ok"})
                    except Exception as exc:  # recorded, not hidden
                        rows.append({"system": system, "layers": layers, "hidden": H, "batch": B, "seq": T,
                                     "dropout": dropout, "chars_per_s": None, "status": "error",
                                     "error": f"{type(exc).__name__}: {exc}"[:500]})
                print(json.dumps(rows[-3:]), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="the main shapes only, torch baselines and the training-step comparison: under "
                             "6 minutes on one GPU")
    args = parser.parse_args(argv)
    import cupy

    from rnn_gpu.kernels.cuda_runner import CudaKernels

    result = {"environment": environment(cupy)}
    print(json.dumps(result["environment"]), flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.skip_tests:
        result["gpu_tests"] = run_gpu_tests(args.out_dir)
        print({k: v for k, v in result["gpu_tests"].items() if k != "tail"}, flush=True)
    backend, runner = cublas_backend(), CudaKernels(cupy)
    flops = measured_fp32_flops(cupy, backend)
    result["fp32_gemm_tflops"] = flops / 1e12
    result["persistent_step_latency_us"] = persistent_step_latency_us(runner, backend,
                                                                      result["environment"]["multiprocessors"])
    print({k: result[k] for k in ("fp32_gemm_tflops", "persistent_step_latency_us")})
    result["recurrence"] = benchmark(runner, backend, flops, configs=QUICK_CONFIGS if args.quick else CONFIGS)
    # Per-step cost with the per-call overhead (Python, the launch, loading W) spread over a long sequence.
    result["long_sequence"] = {"H": 128, "B": 64, "rows": long_sequence_rows(backend, runner, 128, 64)}
    # Plus H=1024, B=64: PyTorch runs cuDNN's PERSIST_STATIC there in fp16 (B < 96), STANDARD in fp32.
    result["torch_recurrence"] = (torch_recurrence_rows("cuda", QUICK_CONFIGS)
                                  + torch_recurrence_rows("cuda", [(1024, 64)], precisions=["fp32", "fp16"]))
    from rnn_gpu.bench import MAIN_CONFIGS

    step_configs = [(*c, 1) for c in MAIN_CONFIGS] + ([] if args.quick else [(*c, 2) for c in MAIN_CONFIGS])
    result["training_step"] = training_step_rows(("cupy", "cupy-cublas", "torch-cuda", "torch-cuda-tf32",
                                                  "torch-cuda-fp16"), step_configs, 1.0 if args.quick else 2.0)
    # What users run: `rnn-gpu train` with and without dropout, beside its step in `bench` and PyTorch's.
    result["trainer"] = trainer_rows("cupy", "torch-cuda", steps=200 if args.quick else 500,
                                     seconds=2.0 if args.quick else 4.0)
    stamp = result["environment"]["date_utc"][:10]
    device = result["environment"]["device"].replace(" ", "_")
    path = args.out_dir / f"gpu_check-{stamp}-{device}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    failed = result.get("gpu_tests", {}).get("failed", 0)
    failed += sum(r.get("status") == "error" for r in result["recurrence"] + result["trainer"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
