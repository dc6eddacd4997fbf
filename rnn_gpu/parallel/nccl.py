"""All-reduce of CuPy buffers: NCCL where CuPy has it, else through the host.

NCCL is set up as ChainerMN does: rank 0 makes the unique id, MPI
broadcasts it, every rank builds its communicator; the reduction runs on
the current (compute) stream, so it is ordered after the backward pass
without a host synchronisation.
"""
from __future__ import annotations

import numpy as np


class NcclReducer:
    def __init__(self, mpi_comm, rank: int, size: int):
        import cupy
        from cupy.cuda import nccl

        self.cupy, self.nccl = cupy, nccl
        uid = nccl.get_unique_id() if rank == 0 else None
        uid = mpi_comm.bcast(uid, root=0)  # a small tuple, once
        self.comm = nccl.NcclCommunicator(size, uid, rank)
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce_sum_(self, buffer) -> None:
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self.types[np.dtype(buffer.dtype)],
                            self.nccl.NCCL_SUM, stream.ptr)


class HostStagedReducer:
    """CuPy without NCCL: copy to the host, MPI Allreduce in place, copy back."""

    def __init__(self, mpi_comm, MPI):
        self.comm, self.MPI = mpi_comm, MPI

    def allreduce_sum_(self, buffer) -> None:
        host = buffer.get()
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        buffer.set(host)


def nccl_unavailable_reason() -> str | None:
    try:
        from cupy.cuda import nccl
    except Exception as exc:  # not built with NCCL, or no libnccl
        return f"{type(exc).__name__}: {exc}"
    return None if hasattr(nccl, "NcclCommunicator") else "cupy.cuda.nccl has no NcclCommunicator"


def make_device_reducer(mpi_comm, MPI, rank: int, size: int):
    """Collective: every rank must call it. NCCL only if every rank has it."""
    has = np.array([nccl_unavailable_reason() is None], dtype=np.int32)
    mpi_comm.Allreduce(MPI.IN_PLACE, has, op=MPI.MIN)
    return NcclReducer(mpi_comm, rank, size) if has[0] else HostStagedReducer(mpi_comm, MPI)
