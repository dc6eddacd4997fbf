"""The kernels through CuPy: compiled lazily with NVRTC by cupy.RawModule,
memoized per device, dtype and launch kind; launch shapes timed once per
problem shape and the fastest kept."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from . import SOURCE_FILE, define_options, kernel_source
from .plan import DEFAULT_TILE, VARIANT_KERNELS, VARIANTS, DeviceLimits, Plan, variant_candidates
from .runner import SOFTMAX_VARIANTS, KernelRunner, per_instance_cache

DEFAULT_SHARED_LIMIT = 48 * 1024  # above this a kernel must opt in
TUNE_CANDIDATES = 3  # per variant and tile shape
TUNE_TILES = ((1, 4), (2, 4), (4, 4), (8, 4), (4, 8), (8, 8))  # (rows, units) per thread
GROUP_THREADS = 256  # threads of a block that shares one row (softmax_cross_entropy_groups)


@functools.cache
def _module(device_id: int, source: str, dtype: np.dtype, tile: tuple, cooperative: bool):
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=kernel_source(source), options=tuple(define_options(dtype, tile)),
                              enable_cooperative_groups=cooperative)


@functools.cache
def _kernel(device_id: int, dtype: np.dtype, tile: tuple, cooperative: bool, name: str, source=SOURCE_FILE):
    return _module(device_id, source, dtype, tile, cooperative).get_function(name)


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
        self.autotune = autotune
        self._barrier = None
        self._tuned: dict = {}
        self._softmax_tuned: dict = {}

    def kernel(self, dtype, name: str, cooperative: bool = False, tile=DEFAULT_TILE):
        # Keyed by the dtype itself: dtype.name costs microseconds, a launch's budget.
        return _kernel(self.device_id, np.dtype(dtype), tuple(tile), cooperative, name)

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
        kernel = _kernel(self.device_id, np.dtype(dtype), DEFAULT_TILE, False, name, source)
        kernel(((rows + 127) // 128,), (128,), tuple(args))

    def _launch_groups(self, name: str, source: str, dtype, groups: int, args: list) -> None:
        kernel = _kernel(self.device_id, np.dtype(dtype), DEFAULT_TILE, False, name, source)
        kernel((groups,), (GROUP_THREADS,), tuple(args), shared_mem=GROUP_THREADS * np.dtype(dtype).itemsize)

    def softmax_variant(self, O, targets) -> str:
        """With autotuning, the faster variant on logits of this shape, timed
        once on a copy of the first ones met; else the width rule."""
        if not self.autotune:
            return super().softmax_variant(O, targets)
        key = (*O.shape, O.dtype)
        if key not in self._softmax_tuned:
            scratch = O.copy()

            def run(variant):
                scratch[...] = O
                self.softmax_cross_entropy_(scratch, targets, variant)

            self._softmax_tuned[key] = min(SOFTMAX_VARIANTS, key=lambda v: self._best_ms(lambda: run(v)))
        return self._softmax_tuned[key]

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

    def run(self, X, W, Hs, init, backward, variant=None, plan=None, out=None):
        if plan is None and self.autotune:
            plan = self.tuned_plan(X, W, Hs, init, backward, variant)
        return super().run(X, W, Hs, init, backward, variant, plan, out)

    def tuned_plan(self, X, W, Hs, init, backward, variant=None) -> Plan | None:
        """The fastest of the cost model's first few plans (of each variant
        when none is named), timed once on these inputs."""
        T, B, H = X.shape
        key = (T, B, H, X.dtype, variant)
        if key not in self._tuned:
            itemsize = np.dtype(X.dtype).itemsize
            pool = [p for v in ((variant,) if variant else VARIANTS) for tile in TUNE_TILES
                    for p in variant_candidates(v, H, B, itemsize, self.limits_for(X.dtype, v, tile),
                                                tile)[:TUNE_CANDIDATES]]
            self._tuned[key] = min(pool, key=lambda p: self._time(p, X, W, Hs, init, backward), default=None)
        return self._tuned[key]

    def _time(self, plan: Plan, X, W, Hs, init, backward, repeats: int = 3) -> float:
        """The fastest of a few runs (after one that compiles and warms up)."""
        cupy = self.xp
        try:
            return self._best_ms(lambda: super(CudaKernels, self).run(X, W, Hs, init, backward, plan=plan), repeats)
        except cupy.cuda.driver.CUDADriverError:  # e.g. too large for a cooperative launch
            return float("inf")
