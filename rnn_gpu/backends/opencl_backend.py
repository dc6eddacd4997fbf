"""NumPy for everything, the fused kernels through OpenCL for the recurrence.

On a machine without a GPU this runs the very kernel source of the CUDA
backend on the CPU (PoCL or Intel's OpenCL CPU runtime), which is how that source is tested everywhere.
"""
from __future__ import annotations

from ..errors import BackendUnavailable
from .base import KernelBackend


class OpenCLBackend(KernelBackend):
    name = "opencl"

    def __init__(self, variant: str | None = None):
        from ..kernels.opencl_runner import OpenCLKernels, opencl_unavailable_reason

        reason = opencl_unavailable_reason()
        if reason:
            raise BackendUnavailable(f"backend 'opencl' cannot run here: {reason}")
        self.kernels = OpenCLKernels()
        self.variant = variant  # None: the planner's choice

    def device_name(self) -> str:
        return f"{self.kernels.device.name} (OpenCL, {self.kernels.device.platform.name})"
