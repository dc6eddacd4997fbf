"""All-reduce of CuPy buffers: NCCL where CuPy has it, else through the host.

NCCL is set up as ChainerMN does: rank 0 makes the unique id, MPI
broadcasts it, every rank builds its communicator; the reduction runs on
the current (compute) stream, so it is ordered after the backward pass
without a host synchronisation.

NCCL refuses two ranks of one communicator on the same device (more ranks
than GPUs: a laptop, a launch script being tried, an oversubscribed node),
so every rank first learns which device each rank uses; where any two share
one, the whole job reduces through the host. (A two-level reduction, ranks
on one device first and NCCL between devices, is not built.)
"""
from __future__ import annotations

import socket

import numpy as np


class NcclReducer:
    description = "NCCL all-reduce of device buffers, one device per rank"

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
    """CuPy without NCCL, or ranks sharing a device: copy to the host, MPI
    Allreduce in place, copy back. `why` says what ruled NCCL out."""

    def __init__(self, mpi_comm, MPI, why: str = ""):
        self.comm, self.MPI = mpi_comm, MPI
        self.description = "device buffers through the host (MPI all-reduce)" + (f": {why}" if why else "")

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


def device_identity() -> str | None:
    """This process's current CUDA device, unique over the job's nodes: the
    host name and the device's PCI bus id (None without CuPy)."""
    try:
        import cupy
    except ImportError:
        return None
    return f"{socket.gethostname()}/{cupy.cuda.Device().pci_bus_id}"


def shared_device(identities: list) -> tuple[str, list[int]] | None:
    """The first device that two or more ranks use, and those ranks."""
    ranks: dict = {}
    for rank, device in enumerate(identities):
        if device is not None:
            ranks.setdefault(device, []).append(rank)
    return next(((device, rs) for device, rs in ranks.items() if len(rs) > 1), None)


def make_device_reducer(mpi_comm, MPI, rank: int, size: int):
    """Collective: every rank must call it, with its device current. NCCL
    when every rank has it and each rank has a device of its own; else
    through the host, the reducer's `description` saying why."""
    devices, missing = zip(*mpi_comm.allgather((device_identity(), nccl_unavailable_reason())), strict=True)
    shared = shared_device(devices)
    if shared:
        device, ranks = shared
        why = f"ranks {', '.join(map(str, ranks))} share the device {device}, and NCCL needs one device per rank"
    elif any(missing):
        first = next(r for r, reason in enumerate(missing) if reason)
        why = f"rank {first} has no NCCL ({missing[first]})"
    else:
        return NcclReducer(mpi_comm, rank, size)
    return HostStagedReducer(mpi_comm, MPI, why)
