"""The backend registry: a backend is found by name, never by an if-chain
elsewhere. The plain NumPy reference is `base.NumpyBackend`; each faster
backend lives in its own module: "numpy" is `cpu_threads.CpuBackend`, the
reference with its measured CPU fast path, and the GPU ones are imported only
when asked for."""
from __future__ import annotations

from ..errors import BackendUnavailable, UsageError
from .base import KernelBackend, NumpyBackend
from .cpu_threads import CpuBackend

BACKEND_NAMES = ("auto", "numpy", "cupy", "opencl")


def cupy_unavailable_reason() -> str | None:
    """None when CuPy imports and sees a usable CUDA device, else why not."""
    from .cupy_backend import cupy_unavailable_reason as reason

    return reason()


def _cupy():
    from .cupy_backend import CupyBackend

    reason = cupy_unavailable_reason()
    if reason:
        raise BackendUnavailable(f"backend 'cupy' cannot run here: {reason}")
    return CupyBackend()


def _opencl():
    from .opencl_backend import OpenCLBackend

    return OpenCLBackend()


def _auto():
    return _cupy() if cupy_unavailable_reason() is None else CpuBackend()


_REGISTRY = {"numpy": CpuBackend, "cupy": _cupy, "opencl": _opencl, "auto": _auto}


def get_backend(name: str = "auto"):
    """Return a backend by name: "numpy", "cupy", "opencl" or "auto".

    "auto" picks CuPy only when it imports and a CUDA device is usable.
    """
    try:
        make = _REGISTRY[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}") from None
    return make()


__all__ = ["BACKEND_NAMES", "BackendUnavailable", "CpuBackend", "KernelBackend", "NumpyBackend",
           "cupy_unavailable_reason", "get_backend"]
