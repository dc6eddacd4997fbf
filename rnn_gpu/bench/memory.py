"""Peak memory of a system: device memory on GPUs, the process's own peak
resident set on the CPU, measured alone in a fresh process for comparisons."""
from __future__ import annotations

import json
import resource
import subprocess
import sys

from .systems import System


def peak_rss_bytes() -> int:
    """This process's own peak resident memory. VmHWM, not ru_maxrss: on
    Linux a child's ru_maxrss starts from its parent's at fork."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_bytes(system: System) -> int:
    """Device memory for GPU systems, else this process's peak RSS."""
    if system.name.startswith("cupy"):
        return int(system.backend.xp.get_default_memory_pool().total_bytes())
    if system.name.startswith("torch-cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated())
    return peak_rss_bytes()


def isolated_peak_memory(name: str, H: int, B: int, T: int, layers: int = 1, dropout: float = 0.0) -> int | None:
    """Peak memory of one system measured alone, in a fresh process."""
    cmd = [sys.executable, "-m", "rnn_gpu", "bench", "--backend", name, "--hidden", str(H), "--batch", str(B),
           "--seq", str(T), "--layers", str(layers), "--dropout", str(dropout), "--seconds", "0.5", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)["peak_mem_bytes"]
