"""Gradient exchange between processes: a communicator with `rank`, `size`,
`allreduce_mean_(buffer)` and the few collectives training needs.

- `single.SingleCommunicator`: one process, every collective a no-op;
- `mpi.MpiCommunicator`: MPI through mpi4py, host buffers reduced in place,
  device buffers through NCCL where it is available (`nccl.py`), else
  through the host.

mpi4py is imported only when the process was started by an MPI launcher
(`launched_by_mpi`) or when asked for by name; a plain run never imports it.
"""
from __future__ import annotations

import os

from .single import SingleCommunicator

DISTRIBUTED_MODES = ("auto", "none", "mpi")

# (size variable, rank variable) of each launcher: MPICH/Hydra and Intel MPI (PMI),
# Open MPI, PMIx-based launchers, Slurm's srun.
LAUNCHER_VARIABLES = (("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                      ("PMIX_SIZE", "PMIX_RANK"), ("SLURM_NTASKS", "SLURM_PROCID"))


def launcher_rank_and_size(environ=os.environ) -> tuple[int, int] | None:
    """(rank, size) as the launcher's environment says, or None when no MPI
    launcher started this process. Reads the environment only."""
    for size_var, rank_var in LAUNCHER_VARIABLES:
        if rank_var in environ and (size_var in environ or rank_var == "PMIX_RANK"):
            try:
                return int(environ[rank_var]), int(environ.get(size_var, "0"))
            except ValueError:
                continue
    return None


def launched_by_mpi(environ=os.environ) -> bool:
    return launcher_rank_and_size(environ) is not None


def env_rank(environ=os.environ) -> int:
    """This process's rank from the launcher's environment (0 without one):
    for deciding who prints before any communicator exists."""
    found = launcher_rank_and_size(environ)
    return found[0] if found else 0


def make_communicator(mode: str = "auto", backend=None):
    """The communicator for this process: MPI when launched by an MPI
    launcher (or `mode` is "mpi"), else a single process. With a backend on
    a GPU, each rank takes the GPU of its local rank."""
    if mode not in DISTRIBUTED_MODES:
        raise ValueError(f"unknown distributed mode {mode!r}; choose one of {', '.join(DISTRIBUTED_MODES)}")
    if mode == "none" or (mode == "auto" and not launched_by_mpi()):
        return SingleCommunicator()
    from .mpi import MpiCommunicator, quiet_library_stderr

    comm = MpiCommunicator.from_world()
    quiet_library_stderr()
    return comm


__all__ = ["DISTRIBUTED_MODES", "SingleCommunicator", "env_rank", "launched_by_mpi", "launcher_rank_and_size",
           "make_communicator"]
