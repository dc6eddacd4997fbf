"""The CUDA backend: the same model code with `xp = cupy`.

CuPy is optional; nothing here imports it at module level. The two
recurrence operations run in the fused kernels of kernels/ when a variant
fits the shape and device, and fall back to the per-step cuBLAS loop of the
base class otherwise.
"""
from __future__ import annotations

import functools

import numpy as np

from .base import KernelBackend


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


def cuda_device_name(cupy, device_id: int | None = None) -> str:
    """The CUDA device's name (CuPy gives bytes or str, by version)."""
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id if device_id is None else device_id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


# One kernel over the whole flat parameter buffer instead of a dozen array
# operations per parameter: at char-RNN sizes the GPU's time goes to launches.
# A negative clip means none.
CLIP = "T g = clip < 0 ? g_in : min(max(g_in, -clip), clip);"


@functools.cache
def _adagrad_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "T g_in, T lr, T eps, T clip", "T p, T mem",
        CLIP + "mem += g * g; p -= lr * g / sqrt(mem + eps);",
        "rnn_gpu_adagrad")


@functools.cache
def _adam_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "T g_in, T lr_t, T beta1, T beta2, T eps, T clip", "T p, T m, T v",
        CLIP + "m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g;"
        "p -= lr_t * m / (sqrt(v) + eps);",
        "rnn_gpu_adam")


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
        return cuda_device_name(self.xp)

    def adagrad_update(self, p, g, mem, lr, eps, clip=None):
        t = p.dtype.type
        _adagrad_kernel()(g, t(lr), t(eps), t(-1 if clip is None else clip), p, mem)

    def adam_update(self, p, g, m, v, lr_t, beta1, beta2, eps, clip=None):
        t = p.dtype.type
        _adam_kernel()(g, t(lr_t), t(beta1), t(beta2), t(eps), t(-1 if clip is None else clip), p, m, v)

    def scatter_add_rows(self, index, values, num_rows, out=None):
        if out is None:
            out = self.xp.zeros((num_rows, values.shape[1]), dtype=values.dtype)
        else:
            out.fill(0)
        self.xp.add.at(out, index, values)  # atomics on the GPU
        return out

    # -- fused kernels -----------------------------------------------------
    @property
    def kernels(self):
        if self._kernels is None:
            from ..kernels.cuda_runner import CudaKernels

            self._kernels = CudaKernels(self.xp)
        return self._kernels
