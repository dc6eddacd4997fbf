"""Profiles one forward launch per configuration under Nsight Compute:

    ncu --profile-from-start off --section SpeedOfLight --section WarpStateStats \
        --section Occupancy python -m bench.profile_kernels

The launch shape is tuned first (outside the profiled range)."""

import cupy

from rnn_gpu.backends.cupy_backend import CupyBackend
from rnn_gpu.bench.timing import recurrence_inputs
from rnn_gpu.kernels.cuda_runner import CudaKernels

CONFIGS = [(128, 64, "tiled"), (1024, 128, "persistent"), (512, 64, "persistent")]
T = 16

runner = CudaKernels(cupy)
for H, B, variant in CONFIGS:
    P, W, h0, _ = recurrence_inputs(CupyBackend(use_kernels=False), H, B, T)
    plan = runner.tuned_plan(P, W, P, h0, False, variant)
    print(H, B, plan, flush=True)
    runner.forward(P, W, h0, plan=plan)
    cupy.cuda.Device().synchronize()
    cupy.cuda.runtime.profilerStart()
    runner.forward(P, W, h0, plan=plan)
    cupy.cuda.Device().synchronize()
    cupy.cuda.runtime.profilerStop()
