"""The CUDA backend: the same model code with `xp = cupy`.

CuPy is optional; nothing here imports it at module level. The two
recurrence operations run in the fused kernels of kernels/ when a variant
fits the shape and device, and fall back to the per-step cuBLAS loop of the
base class otherwise.
"""
from __future__ import annotations

import functools

import numpy as np

from .backend import KernelBackend


@functools.lru_cache(maxsize=1)
def cupy_unavailable_reason() -> str | None:
    """None when CuPy imports and sees a usable CUDA device, else why not."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return f"CuPy is not installed ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no usable CUDA device ({exc})"
    if count < 1:
        return "no CUDA device found"
    return None


class CupyBackend(KernelBackend):
    name = "cupy"

    def __init__(self, use_kernels: bool = True):
        import cupy

        self.xp = cupy
        self.use_kernels = use_kernels
        self._kernels = None

    def to_host(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def device_name(self) -> str:
        props = self.xp.cuda.runtime.getDeviceProperties(self.xp.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def tanh_(self, x):
        return self.xp.tanh(x, out=x)  # one fused kernel on the GPU

    def scatter_add_rows(self, index, values, num_rows):
        import cupyx

        out = self.xp.zeros((num_rows, values.shape[1]), dtype=values.dtype)
        cupyx.scatter_add(out, index, values)
        return out

    # -- fused kernels -----------------------------------------------------
    @property
    def kernels(self):
        if self._kernels is None:
            from .kernels.cuda_runner import CudaRecurrence

            self._kernels = CudaRecurrence(self.xp)
        return self._kernels
