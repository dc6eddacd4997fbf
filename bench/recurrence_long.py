"""The recurrence's per-step cost without the per-call overhead: the same
shapes at T=64 and at a long T, where Python, the launch and loading W once
are spread over many steps. Writes one JSON object to stdout.

    python -m bench.recurrence_long [--hidden 128] [--batch 64]
"""
import argparse
import dataclasses
import datetime as dt
import json
import sys

from rnn_gpu.bench.timing import recurrence_inputs, time_recurrence

VARIANTS = ("small", "tiled", "persistent")


def long_sequence_rows(backend, runner, H: int, B: int, lengths=(64, 1024), variants=VARIANTS) -> list[dict]:
    """µs per step of each variant's tuned plan at each sequence length."""
    rows = []
    for variant in variants:
        for T in lengths:
            P, W, h0, _ = recurrence_inputs(backend, H, B, T)
            plan = runner.tuned_plan(P, W, P, h0, False, variant)
            if plan is None:
                continue
            timing = time_recurrence(backend, H, B, T, repeats=7,
                                     forward=lambda P, W, h0, plan=plan: runner.forward(P, W, h0, plan=plan),
                                     backward=lambda G, Hs, h0, W, plan=plan: runner.backward(G, Hs, W, plan=plan))
            rows.append({"variant": variant, "T": T, **timing, "plan": dataclasses.asdict(plan)})
            print(variant, T, timing, file=sys.stderr)
    return rows


def main() -> int:
    import cupy

    from rnn_gpu.backends.cupy_backend import CupyBackend, cuda_device_name
    from rnn_gpu.kernels.cuda_runner import CudaKernels

    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 1024])
    args = parser.parse_args()
    backend, runner = CupyBackend(use_kernels=False), CudaKernels(cupy)
    rows = long_sequence_rows(backend, runner, args.hidden, args.batch, args.lengths)
    print(json.dumps({"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "device": cuda_device_name(cupy),
                      "hidden": args.hidden, "batch": args.batch, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
