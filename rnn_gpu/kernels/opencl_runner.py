"""The kernels through PyOpenCL: on a CPU (PoCL, or Intel's OpenCL CPU
runtime) every test run executes the same kernel source that the GPU runs."""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from . import SOURCE_FILE, define_options, kernel_source
from .plan import DEFAULT_TILE, DeviceLimits, Plan
from .runner import KernelRunner, per_instance_cache

# A CPU runs a work-group as a loop over its work-items, and PoCL compiles
# each work-group size anew: every launch uses this one size (the kernels
# leave surplus work-items idle), so each kernel compiles once.
WORK_GROUP = 256


def opencl_unavailable_reason() -> str | None:
    try:
        import pyopencl as cl
    except Exception as exc:
        return f"PyOpenCL is not installed ({exc}); pip install 'rnn_gpu[kernels]'"
    try:
        devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    except Exception as exc:
        return f"no OpenCL platform ({exc}); pip install pocl-binary-distribution"
    return None if devices else "no OpenCL device"


def describe_device() -> str:
    """The device the runner picks and its platform (the test header names it)."""
    reason = opencl_unavailable_reason()
    if reason:
        return f"none ({reason})"
    import pyopencl as cl

    device = _pick_device(cl)
    return f"{device.name} ({device.platform.name}, {device.platform.version.strip()})"


def _pick_device(cl):
    """Prefer a CPU device, which is what CI has (.ci/opencl-cpu.sh)."""
    devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    cpus = [d for d in devices if d.type & cl.device_type.CPU]
    return (cpus or devices)[0]


def build_program(cl, context, device, source: str, options: list[str], label: str = "kernels"):
    """Builds `source` for `device`; returns (program, its build log).

    Intel's OpenCL CPU runtime writes remarks into every build log ("Device
    build started", the options, "Device build done"), and pyopencl turns any
    non-empty log into a CompilerWarning, "Non-empty compiler output
    encountered", twice per build: about 90 per test run, which bury the
    warnings that are news. That warning carries no log of its own (only
    PYOPENCL_COMPILER_OUTPUT=1 puts the log in it), so it is silenced here and
    the log is read from the built program instead, so nothing is lost: the
    caller keeps it (OpenCLKernels.build_logs and last_build_log), and
    RNN_GPU_OPENCL_LOG=1 prints every build's log to stderr. A failed build
    raises pyopencl's error as before, whose message holds the log. Where
    PYOPENCL_COMPILER_OUTPUT is set, pyopencl's own warnings are left alone:
    they were asked for. (catch_warnings is process-wide: builds happen on
    the calling thread, not in the worker threads of a recurrence.)
    """
    with warnings.catch_warnings():
        if not os.environ.get("PYOPENCL_COMPILER_OUTPUT"):
            warnings.simplefilter("ignore", cl.CompilerWarning)
        program = cl.Program(context, source).build(options=options)
    try:
        log = program.get_build_info(device, cl.program_build_info.LOG).strip()
    except cl.Error as exc:  # a runtime that keeps no log for a program it loaded from a binary
        log = f"(no build log: {exc})"
    if os.environ.get("RNN_GPU_OPENCL_LOG") == "1":
        print(f"OpenCL build log of {label} ({' '.join(options)}) on {device.name}:\n{log}", file=sys.stderr)
    return program, log


class OpenCLKernels(KernelRunner):
    def __init__(self):
        import pyopencl as cl

        self.cl = cl
        self.device = _pick_device(cl)
        self.context = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.context)
        self.limits = DeviceLimits(
            multiprocessors=self.device.max_compute_units,
            shared_per_block=self.device.local_mem_size,
            max_threads_per_block=min(WORK_GROUP, self.device.max_work_group_size),
            cooperative=False,  # OpenCL 1.2 cannot promise co-resident work-groups
        )
        # The build log of each program (see build_program), by (dtype, tile, source), and the latest one.
        self.build_logs: dict[tuple, str] = {}
        self.last_build_log: str | None = None

    @per_instance_cache
    def _program(self, dtype: np.dtype, tile: tuple, source: str):
        # Misaligned 128-bit shared loads fault on CUDA; here they give NaN, so every test run checks them.
        options = [*define_options(dtype, tile), "-DCHECK_ALIGNMENT=1"]
        program, log = build_program(self.cl, self.context, self.device, kernel_source(source), options, source)
        self.build_logs[(np.dtype(dtype).str, tuple(tile), source)] = self.last_build_log = log
        return program

    @per_instance_cache
    def _kernel(self, dtype: np.dtype, tile: tuple, name: str, source: str = SOURCE_FILE):
        return self.cl.Kernel(self._program(dtype, tile, source), name)

    def _launch_rows(self, name: str, source: str, dtype, rows: int, args: list) -> None:
        kernel = self._kernel(np.dtype(dtype), DEFAULT_TILE, name, source)
        kernel(self.queue, (-(-rows // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), *args)

    def _launch_groups(self, name: str, source: str, dtype, groups: int, args: list) -> None:
        kernel = self._kernel(np.dtype(dtype), DEFAULT_TILE, name, source)
        kernel(self.queue, (groups * WORK_GROUP,), (WORK_GROUP,), *args,
               self.cl.LocalMemory(WORK_GROUP * np.dtype(dtype).itemsize))

    def _input(self, a, dtype):
        mf = self.cl.mem_flags
        host = np.ascontiguousarray(a, dtype=dtype)
        return self.cl.Buffer(self.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=host)

    def _output(self, like, out):
        mf = self.cl.mem_flags
        start = np.ascontiguousarray(out if out is not None else np.empty_like(like))
        return self.cl.Buffer(self.context, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=start)

    def _result(self, Y, like, out):
        host = np.empty_like(like)
        self.cl.enqueue_copy(self.queue, host, Y)
        if out is not None:
            out[...] = host
            return out
        return host

    def _barrier_state(self):
        mf = self.cl.mem_flags
        return self.cl.Buffer(self.context, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=np.zeros(2, np.uint32))

    def _launch(self, plan: Plan, dtype, args: list, cooperative: bool) -> None:
        if cooperative:
            raise ValueError("OpenCL has no cooperative launch; use the per_step variant")
        kernel = self._kernel(np.dtype(dtype), plan.tile, plan.kernel)
        if plan.block > WORK_GROUP:
            raise ValueError(f"plan needs {plan.block} work-items per group; at most {WORK_GROUP} here")
        kernel(self.queue, (plan.grid * WORK_GROUP,), (WORK_GROUP,), *args, self.cl.LocalMemory(plan.shared_bytes))
