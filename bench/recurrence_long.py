"""The recurrence's per-step cost without the per-call overhead: the same
shapes at T=64 and at a long T, where Python, the launch and loading W once
are spread over many steps. Writes one JSON object to stdout.

    PYTHONPATH=. python3 bench/recurrence_long.py [--hidden 128] [--batch 64]
"""
import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import cupy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rnn_gpu.cupy_backend import CupyBackend  # noqa: E402
from rnn_gpu.kernels.cuda_runner import CudaKernels  # noqa: E402
from rnn_gpu.timing import recurrence_inputs, time_recurrence  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 1024])
    args = parser.parse_args()
    backend, runner = CupyBackend(use_kernels=False), CudaKernels(cupy)
    H, B = args.hidden, args.batch
    rows = []
    for variant in ("small", "tiled", "persistent"):
        for T in args.lengths:
            P, W, h0, _ = recurrence_inputs(backend, H, B, T)
            plan = runner.tuned_plan(P, W, P, h0, False, variant)
            if plan is None:
                continue
            timing = time_recurrence(backend, H, B, T, repeats=7,
                                     forward=lambda P, W, h0: runner.forward(P, W, h0, plan=plan),
                                     backward=lambda G, Hs, h0, W: runner.backward(G, Hs, W, plan=plan))
            rows.append({"variant": variant, "T": T, **timing, "plan": plan.__dict__})
            print(variant, T, timing, file=sys.stderr)
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(json.dumps({"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": name,
                      "hidden": H, "batch": B, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
