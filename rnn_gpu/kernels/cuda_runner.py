"""The kernels through CuPy: compiled lazily with NVRTC by cupy.RawModule,
memoized per device, dtype and launch kind (the runners' one memo,
runner.memo: a CudaKernels serves one device); launch shapes and the
softmax variant timed once per problem shape and the fastest kept
(KernelRunner.tuned_plan, `softmax_variant`)."""
from __future__ import annotations

import dataclasses

import numpy as np

from . import SOURCE_FILE, define_options, kernel_source
from .plan import DEFAULT_TILE, VARIANT_KERNELS, DeviceLimits, Plan
from .runner import SOFTMAX_VARIANTS, KernelRunner, memo, per_instance_cache

DEFAULT_SHARED_LIMIT = 48 * 1024  # above this a kernel must opt in
GROUP_THREADS = 256  # threads of a block that shares one row (softmax_cross_entropy_groups)


def cuda_device_name(cupy, device_id: int | None = None) -> str:
    """The CUDA device's name (CuPy gives bytes or str, by version)."""
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id if device_id is None else device_id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def device_limits(cupy, device_id: int) -> DeviceLimits:
    props = cupy.cuda.runtime.getDeviceProperties(device_id)
    return DeviceLimits(
        multiprocessors=int(props["multiProcessorCount"]),
        shared_per_block=int(props.get("sharedMemPerBlockOptin", props["sharedMemPerBlock"])),
        max_threads_per_block=int(props["maxThreadsPerBlock"]),
        cooperative=bool(props.get("cooperativeLaunch", 0)),
    )


class CudaKernels(KernelRunner):
    def __init__(self, cupy, autotune: bool = True):
        self.xp = cupy
        self.device_id = cupy.cuda.Device().id
        self.limits = device_limits(cupy, self.device_id)
        self.device_label = cuda_device_name(cupy, self.device_id)
        self.autotune = autotune
        self._barrier = None

    @per_instance_cache
    def _module(self, source: str, dtype: np.dtype, tile: tuple, cooperative: bool):
        with self.xp.cuda.Device(self.device_id):
            return self.xp.RawModule(code=kernel_source(source), options=tuple(define_options(dtype, tile)),
                                     enable_cooperative_groups=cooperative)

    @per_instance_cache
    def _kernel(self, dtype: np.dtype, tile: tuple, cooperative: bool, name: str, source=SOURCE_FILE):
        return self._module(source, dtype, tile, cooperative).get_function(name)

    def kernel(self, dtype, name: str, cooperative: bool = False, tile=DEFAULT_TILE):
        # Keyed by the dtype itself: dtype.name costs microseconds, a launch's budget.
        return self._kernel(np.dtype(dtype), tuple(tile), cooperative, name)

    @per_instance_cache
    def limits_for(self, dtype, variant: str, tile=DEFAULT_TILE) -> DeviceLimits:
        kernel = self.kernel(dtype, VARIANT_KERNELS[variant], variant == "persistent", tile)
        threads = min(kernel.max_threads_per_block, self.limits.max_threads_per_block)
        return dataclasses.replace(self.limits, max_threads_per_block=threads)

    def _barrier_state(self):
        if self._barrier is None:  # grid_barrier leaves it zeroed for the next launch
            self._barrier = self.xp.zeros(2, dtype=self.xp.uint32)
        return self._barrier

    def _launch(self, plan: Plan, dtype, args: list, cooperative: bool) -> None:
        kernel = self.kernel(dtype, plan.kernel, cooperative, plan.tile)
        if plan.shared_bytes > DEFAULT_SHARED_LIMIT and kernel.max_dynamic_shared_size_bytes < plan.shared_bytes:
            kernel.max_dynamic_shared_size_bytes = plan.shared_bytes
        kernel((plan.grid,), (plan.block,), tuple(args), shared_mem=plan.shared_bytes)

    def _launch_rows(self, name: str, source: str, dtype, rows: int, args: list) -> None:
        kernel = self._kernel(np.dtype(dtype), DEFAULT_TILE, False, name, source)
        kernel(((rows + 127) // 128,), (128,), tuple(args))

    def _launch_groups(self, name: str, source: str, dtype, groups: int, args: list) -> None:
        kernel = self._kernel(np.dtype(dtype), DEFAULT_TILE, False, name, source)
        kernel((groups,), (GROUP_THREADS,), tuple(args), shared_mem=GROUP_THREADS * np.dtype(dtype).itemsize)

    def softmax_variant(self, O, targets) -> str:
        """With autotuning, the faster variant on logits of this shape, timed
        once on a copy of the first ones met; else the width rule."""
        if not self.autotune:
            return super().softmax_variant(O, targets)

        def tune():
            scratch = O.copy()

            def run(variant):
                scratch[...] = O
                self.softmax_cross_entropy_(scratch, targets, variant)

            return min(SOFTMAX_VARIANTS, key=lambda v: self._best_ms(lambda: run(v)))

        return memo(self, "softmax_variant", (*O.shape, np.dtype(O.dtype).str), tune)

    def _best_ms(self, run, repeats: int = 3) -> float:
        """The fastest of a few runs of run() in milliseconds, after one that compiles and warms up."""
        cupy = self.xp
        run()
        best = float("inf")
        for _ in range(repeats):
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            run()
            stop.record()
            stop.synchronize()
            best = min(best, cupy.cuda.get_elapsed_time(start, stop))
        return best

    def _time(self, plan: Plan, X, W, Hs, init, backward, repeats: int = 3) -> float:
        """The fastest of a few runs (after one that compiles and warms up)."""
        cupy = self.xp
        try:
            return self._best_ms(lambda: self.run(X, W, Hs, init, backward, plan=plan), repeats)
        except cupy.cuda.driver.CUDADriverError:  # e.g. too large for a cooperative launch
            return float("inf")
