"""NVRTC through ctypes: compiles the kernels for a GPU architecture on a
machine without a GPU (NVRTC needs no device, only its library, which
installs from PyPI as nvidia-cuda-nvrtc)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import NvrtcUnavailable


def _candidates():
    if os.environ.get("RNN_GPU_NVRTC"):  # a library named outright (a site CUDA, a test)
        yield os.environ["RNN_GPU_NVRTC"]
    for root in sys.path:
        for pattern in ("nvidia/cu*/lib/libnvrtc.so*", "nvidia/cuda_nvrtc/lib/libnvrtc.so*"):
            yield from sorted(glob.glob(os.path.join(root, pattern)), reverse=True)
    for home in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home:
            yield from sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")), reverse=True)
    found = ctypes.util.find_library("nvrtc")
    if found:
        yield found


@functools.lru_cache(maxsize=1)
def library():
    for path in _candidates():
        if "builtins" in Path(path).name:
            continue
        try:
            load_builtins_beside(path)
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise NvrtcUnavailable("libnvrtc not found; pip install 'nvidia-cuda-nvrtc>=13,<14' (or set CUDA_PATH)")


def load_builtins_beside(path) -> None:
    """Loads libnvrtc-builtins from libnvrtc's own folder first, globally:
    some wheels' libnvrtc (nvidia-cuda-nvrtc 13.0, which PyTorch pins) do not
    look beside themselves for it, and then every compile fails with
    "failed to open libnvrtc-builtins.so"."""
    for builtins in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), "libnvrtc-builtins.so*")),
                           reverse=True):
        try:
            ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return
        except OSError:
            continue


def version() -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    library().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


@dataclass
class CompileResult:
    ok: bool
    log: str
    cubin_bytes: int
    registers: int | None  # per thread, from ptxas's report
    spill_bytes: int | None


def compile_cubin(source: str, name: str, options: list[str]) -> CompileResult:
    """Compiles to a cubin with ptxas's resource report (-Xptxas -v)."""
    lib = library()
    prog = ctypes.c_void_p()
    check = _checker(lib)
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None))
    try:
        opts = [*options, "--ptxas-options=-v"]
        argv = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        status = lib.nvrtcCompileProgram(prog, len(opts), argv)
        size = ctypes.c_size_t()
        check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetProgramLog(prog, buf))
        log = buf.value.decode(errors="replace")
        cubin = ctypes.c_size_t(0)
        if status == 0:
            check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin)))
        registers = [int(m) for m in re.findall(r"Used (\d+) registers", log)]
        spills = [int(m) for m in re.findall(r"(\d+) bytes spill stores", log)]
        return CompileResult(status == 0 and cubin.value > 0, log, cubin.value,
                             max(registers) if registers else None, max(spills) if spills else None)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _checker(lib):
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(status):
        if status != 0:
            raise RuntimeError(f"NVRTC: {lib.nvrtcGetErrorString(status).decode()}")
    return check
