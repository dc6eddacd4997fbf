"""The CUDA backend: the same model code with `xp = cupy`.

CuPy is optional; nothing here imports it at module level. The two
recurrence operations run in the fused kernels of kernels/ when a variant
fits the shape and device, and fall back to the per-step cuBLAS loop of the
base class otherwise. With zoneout on, the recurrence is the base class's
reference loop on CuPy arrays (no kernel variant has zoneout); the masks of
every kind are made by kernels/dropout.cu (KernelBackend.dropout_mask).
"""
from __future__ import annotations

import functools

import numpy as np

from ..kernels.cuda_runner import cuda_device_name
from .base import KernelBackend

__all__ = ["CupyBackend", "cuda_device_name", "cupy_unavailable_reason"]


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


# One kernel over the whole flat parameter buffer instead of a dozen array
# operations per parameter: at char-RNN sizes the GPU's time goes to launches.
# A negative clip means none; `ok` (a one-element device flag, step_health_'s)
# 0 leaves everything as it was, so a skipped step never waits for the host.
CLIP = "T g = clip < 0 ? g_in : min(max(g_in, -clip), clip);"


# Decoupled weight decay (AdamW's, `decay` = 1 - lr * weight_decay) is a
# variant of each kernel that scales p first, skipped with the update; without
# it the kernels are the ones they always were.
DECAY = "p *= decay;"


@functools.cache
def _adagrad_kernel(decay: bool = False):
    import cupy

    return cupy.ElementwiseKernel(
        "T g_in, T lr, T eps, T clip, raw bool ok" + (", T decay" if decay else ""), "T p, T mem",
        "if (ok[0]) {" + CLIP + (DECAY if decay else "") + "mem += g * g; p -= lr * g / sqrt(mem + eps); }",
        "rnn_gpu_adagradw" if decay else "rnn_gpu_adagrad")


@functools.cache
def _adam_kernel(decay: bool = False):
    import cupy

    return cupy.ElementwiseKernel(
        "T g_in, T lr_t, T beta1, T beta2, T eps, T clip, raw bool ok" + (", T decay" if decay else ""),
        "T p, T m, T v",
        "if (ok[0]) {" + CLIP + (DECAY if decay else "") + "m = beta1 * m + (1 - beta1) * g;"
        " v = beta2 * v + (1 - beta2) * g * g; p -= lr_t * m / (sqrt(v) + eps); }",
        "rnn_gpu_adamw" if decay else "rnn_gpu_adam")


@functools.cache
def _health_kernel():
    """step_health_'s bookkeeping in one launch, after the sum's reduction."""
    import cupy

    return cupy.ElementwiseKernel(
        "T total, raw T loss, int64 step", "bool ok, raw int64 health",
        "ok = isfinite(total); if (!ok) { health[0] += 1;"
        " if (health[1] == 0) { health[1] = step; health[2] = !isfinite(loss[0]); } }",
        "rnn_gpu_step_health")


class CupyBackend(KernelBackend):
    name = "cupy"

    def __init__(self, use_kernels: bool = True):
        import cupy

        self.xp = cupy
        self.use_kernels = use_kernels
        self._kernels = None
        self._always = None  # the flag of an update nothing can skip

    def to_host(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def device_name(self) -> str:
        return cuda_device_name(self.xp)

    def adagrad_update(self, p, g, mem, lr, eps, clip=None, ok=None, decay=None):
        t = p.dtype.type
        extra = () if decay is None else (t(decay),)
        _adagrad_kernel(decay is not None)(g, t(lr), t(eps), t(-1 if clip is None else clip), self._ok(ok), *extra,
                                           p, mem)

    def adam_update(self, p, g, m, v, lr_t, beta1, beta2, eps, clip=None, ok=None, decay=None):
        t = p.dtype.type
        extra = () if decay is None else (t(decay),)
        _adam_kernel(decay is not None)(g, t(lr_t), t(beta1), t(beta2), t(eps), t(-1 if clip is None else clip),
                                        self._ok(ok), *extra, p, m, v)

    def _ok(self, ok):
        if ok is None:
            if self._always is None:
                self._always = self.xp.ones(1, dtype=bool)
            return self._always
        return ok

    def step_health_(self, buffer, loss, health, step: int):
        ok = self.xp.empty(1, dtype=bool)
        _health_kernel()(self.xp.sum(buffer), loss, np.int64(step), ok, health)
        return ok

    # scatter_add_rows: the base class's, through cupy (a one-hot GEMM or a
    # sorted segment sum): no float atomics, so the gradient of U sums in the
    # same order on every run.

    # -- fused kernels -----------------------------------------------------
    @property
    def kernels(self):
        if self._kernels is None:
            from ..kernels.cuda_runner import CudaKernels

            self._kernels = CudaKernels(self.xp)
        return self._kernels
