"""The fused recurrence kernels: their source, compile options and launch plans.

The kernel source lives in the top-level kernels/ folder, written once for
CUDA and OpenCL (kernels/portable.h). Runners: cuda_runner.py (CuPy) and
opencl_runner.py (PyOpenCL, which runs them on a CPU through PoCL).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np


def _kernel_dir() -> Path:
    """kernels/ of a checkout, or its copy inside an installed package."""
    checkout = Path(__file__).resolve().parents[2] / "kernels"
    return checkout if (checkout / "portable.h").exists() else Path(__file__).resolve().parent / "source"


KERNEL_DIR = _kernel_dir()
SOURCE_FILE = "recurrence.cu"
KERNEL_NAMES = ("recurrence_small", "recurrence_tiled", "recurrence_units")
# Every kernel source and the kernels it defines.
SOURCES = {SOURCE_FILE: KERNEL_NAMES,
           "softmax_cross_entropy.cu": ("softmax_cross_entropy", "softmax_cross_entropy_groups"),
           "selftest.cu": ("group_sum_test",), "dropout.cu": ("dropout_apply", "dropout_hashes")}
TILE_ROWS = 4  # batch rows per thread
TILE_UNITS = 4  # hidden units per thread: a multiple of 4
SMALL_K = 32  # weights per thread held in registers by recurrence_small


@functools.cache
def kernel_source(name: str = SOURCE_FILE) -> str:
    """The source with its local #include "..." lines inlined, so that both
    compilers get one self-contained text (and caches key on all of it)."""
    path = KERNEL_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"kernel source not found: {path}")

    def inline(match):
        return kernel_source(match.group(1))

    return re.sub(r'^#include "([^"]+)"\s*$', inline, path.read_text(), flags=re.M)


def defines(dtype, tile=(TILE_ROWS, TILE_UNITS)) -> dict:
    if tile[1] % 4:
        raise ValueError(f"units per thread must be a multiple of 4 (read four at a time), not {tile[1]}")
    return {"REAL_IS_DOUBLE": int(np.dtype(dtype) == np.float64), "TILE_ROWS": tile[0], "TILE_UNITS": tile[1],
            "SMALL_K": SMALL_K}


def define_options(dtype, tile=(TILE_ROWS, TILE_UNITS)) -> list[str]:
    return [f"-D{k}={v}" for k, v in defines(dtype, tile).items()]
