"""Predicted weak-scaling efficiency of data-parallel training, on paper.

    python -m bench.scaling_model

Each step exchanges one buffer (all parameters' gradients, in float32, plus
the loss and the stop flags) in one all-reduce after the backward pass, with
no overlap. A ring all-reduce of S bytes over N GPUs takes about
latency + 2 (N-1)/N * S / busbw, and each GPU keeps its own batch (weak
scaling), so efficiency = step / (step + all-reduce), and it stays at 90% or
above while a step takes at least 9 all-reduces. The step times are the
measured single-GPU steps of the H100 GPU table (docs/performance.md, 2026-11-24); the
bandwidths and latencies are the assumptions below, not measurements made
here. Prints a markdown table.
"""
from __future__ import annotations

from rnn_gpu.layout import FlatLayout, param_shapes
from rnn_gpu.training import EXCHANGED

VOCAB = 65
# Single-GPU training step, seconds: B*T / chars per second of the fused kernels, H100, 2026-11-24
# (bench/results/gpu-compare-2026-11-24-H100/bench.json).
STEP_S = {(128, 32, 64): 2048 / 1_729_678, (512, 64, 64): 4096 / 2_477_974, (1024, 128, 50): 6400 / 1_914_743}
# (name, GPUs, bus bandwidth in bytes/s, fixed latency per all-reduce in seconds): assumed.
# NVLink 4 (8 GPUs on NVSwitch): NCCL's ring reaches about 370 GB/s bus bandwidth on the wire (NCCL
# developers, nccl-tests issue 212); small messages do not reach it, hence the 20 µs latency floor.
# InfiniBand NDR (400 Gb/s per GPU, 8 nodes of 8): about 45 GB/s bus bandwidth and a 60 µs floor.
FABRICS = (("NVLink, 8 GPUs", 8, 370e9, 20e-6), ("InfiniBand NDR, 64 GPUs", 64, 45e9, 60e-6))


def allreduce_seconds(nbytes: int, gpus: int, busbw: float, latency: float) -> float:
    return latency + 2 * (gpus - 1) / gpus * nbytes / busbw


def main() -> None:
    print("| H, B, T | layers | all-reduce bytes | single-GPU step ms | "
          + " | ".join(f"{name}: all-reduce µs, efficiency, 90% needs a step of" for name, *_ in FABRICS) + " |")
    print("|---|---|---|---|" + "---|" * len(FABRICS))
    for (H, B, T), step in STEP_S.items():
        for layers in (1, 2):
            nbytes = 4 * (FlatLayout(param_shapes(VOCAB, H, layers)).size + len(EXCHANGED))
            step_l = step if layers == 1 else None  # two-layer steps were not measured on a GPU
            cells = []
            for _, gpus, busbw, latency in FABRICS:
                t = allreduce_seconds(nbytes, gpus, busbw, latency)
                eff = f"{step_l / (step_l + t):.1%}" if step_l else "-"
                cells.append(f"{t * 1e6:.0f} µs, {eff}, {9 * t * 1e3:.2f} ms")
            step_text = f"{step * 1e3:.2f}" if step_l else "not measured"
            print(f"| {H}, {B}, {T} | {layers} | {nbytes / 1e6:.2f} MB | {step_text} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
