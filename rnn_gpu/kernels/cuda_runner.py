"""The kernels through CuPy: compiled lazily with NVRTC by cupy.RawModule,
memoized per device, dtype and launch kind."""
from __future__ import annotations

import functools

import numpy as np

from . import define_options, kernel_source
from .plan import DeviceLimits, Plan
from .runner import RecurrenceKernels

DEFAULT_SHARED_LIMIT = 48 * 1024  # above this a kernel must opt in


@functools.lru_cache(maxsize=None)
def _module(device_id: int, dtype_name: str, cooperative: bool):
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=kernel_source(), options=tuple(define_options(dtype_name)),
                              enable_cooperative_groups=cooperative)


@functools.lru_cache(maxsize=None)
def _kernel(device_id: int, dtype_name: str, cooperative: bool, name: str):
    return _module(device_id, dtype_name, cooperative).get_function(name)


def device_limits(cupy, device_id: int) -> DeviceLimits:
    props = cupy.cuda.runtime.getDeviceProperties(device_id)
    return DeviceLimits(
        multiprocessors=int(props["multiProcessorCount"]),
        shared_per_block=int(props.get("sharedMemPerBlockOptin", props["sharedMemPerBlock"])),
        max_threads_per_block=int(props["maxThreadsPerBlock"]),
        cooperative=bool(props.get("cooperativeLaunch", 0)),
    )


class CudaRecurrence(RecurrenceKernels):
    def __init__(self, cupy):
        self.xp = cupy
        self.device_id = cupy.cuda.Device().id
        self.limits = device_limits(cupy, self.device_id)
        self._barrier = None

    def _barrier_state(self):
        if self._barrier is None:  # grid_barrier leaves it zeroed for the next launch
            self._barrier = self.xp.zeros(2, dtype=self.xp.uint32)
        return self._barrier

    def kernel(self, dtype, name: str, cooperative: bool = False):
        return _kernel(self.device_id, np.dtype(dtype).name, cooperative, name)

    def _launch(self, plan: Plan, dtype, args: list, cooperative: bool) -> None:
        kernel = self.kernel(dtype, plan.kernel, cooperative)
        if plan.shared_bytes > DEFAULT_SHARED_LIMIT and kernel.max_dynamic_shared_size_bytes < plan.shared_bytes:
            kernel.max_dynamic_shared_size_bytes = plan.shared_bytes
        kernel((plan.grid,), (plan.block,), tuple(args), shared_mem=plan.shared_bytes)
