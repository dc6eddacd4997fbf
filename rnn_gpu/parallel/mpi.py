"""MPI between processes (mpi4py), for host and device buffers.

Host (NumPy) buffers are reduced in place with the uppercase buffer methods
(`Allreduce(IN_PLACE, ...)`), never pickled. Device (CuPy) buffers go
through NCCL on the compute stream when CuPy has it (`nccl.NcclReducer`,
set up from a unique id that MPI broadcasts, as ChainerMN does), else
through the host and MPI. Import this module only in an MPI job: importing
mpi4py initialises MPI.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

from ..errors import EnvironmentFailure, QuietExit

ABORT_GRACE_S = 0.2  # an aborting rank's error line was seen lost in MPICH's launcher without it
LIBRARY_STDERR = "RNN_GPU_MPI_STDERR"  # 1: keep the MPI library's own messages (debugging MPI itself)


def quiet_library_stderr(environ=os.environ) -> None:
    """The MPI library's own messages on file descriptor 2 (a fatal error's
    stack, an abort notice, printed by a rank whose peer died) go to
    /dev/null; Python's `sys.stderr` keeps the original stream, so a rank's
    stderr holds its `error:` line and nothing else."""
    if environ.get(LIBRARY_STDERR) == "1" or sys.stderr is None:
        return
    try:
        if sys.stderr.fileno() != 2:
            return  # already elsewhere (a test's capture): leave it
    except (AttributeError, ValueError, OSError):
        return
    sys.stderr.flush()
    kept = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = open(kept, "w", encoding=sys.stderr.encoding, errors="backslashreplace",  # noqa: SIM115
                      buffering=1)  # line-buffered: each error line goes out whole, at once


class MpiCommunicator:
    name = "mpi"

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # the ranks on this node
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._device_reducer = None  # made on the first device buffer
        self._thread_limit = None

    @classmethod
    def from_world(cls) -> MpiCommunicator:
        from mpi4py import MPI

        return cls(MPI.COMM_WORLD)

    @property
    def master_process(self) -> bool:
        return self.rank == 0

    # -- setting up each rank ------------------------------------------------
    def set_cpu_threads(self) -> int:
        """BLAS threads = this node's cores / the ranks on this node, before
        the first GEMM: N ranks each using every core run many times slower."""
        from threadpoolctl import threadpool_limits

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // self.local_size)
        self._thread_limit = threadpool_limits(limits=threads, user_api="blas")  # kept: the limit lasts while held
        return threads

    def use_local_device(self, backend) -> None:
        """Each rank on a node takes the GPU of its local rank (round robin)."""
        if backend.xp is np:
            return
        cuda = backend.xp.cuda
        cuda.Device(self.local_rank % cuda.runtime.getDeviceCount()).use()

    # -- collectives -----------------------------------------------------------
    def allreduce_sum_(self, buffer) -> None:
        """Sums `buffer` over all ranks, in place, identically on every rank."""
        with self.peers_reached("an all-reduce"):
            if isinstance(buffer, np.ndarray):
                self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
            else:
                self._device(buffer).allreduce_sum_(buffer)

    @contextlib.contextmanager
    def peers_reached(self, what: str):
        """A collective that fails (another rank died: MPI reports it as an
        error, not as a hang) becomes one EnvironmentFailure line, not MPI's
        error stack."""
        try:
            yield
        except self.MPI.Exception as exc:
            reason = self.MPI.Get_error_string(exc.Get_error_class())
            raise EnvironmentFailure(f"lost another process of this job in {what} (MPI: {reason}); "
                                     "the last checkpoint resumes the run") from None

    def allreduce_mean_(self, buffer) -> None:
        """Averages `buffer` over all ranks, in place: one all-reduce, then a scale."""
        self.allreduce_sum_(buffer)
        buffer /= self.size

    def start_allreduce_max(self, values: np.ndarray):
        """The element-wise maximum of a small host array over all ranks, begun
        now (MPI_Iallreduce) and read with `.wait()` later: a step's stop flags
        travel while the next step runs, and every rank reads them at the same
        step."""
        result = np.empty_like(values)
        with self.peers_reached("exchanging the stop flags"):
            request = self.comm.Iallreduce(values, result, op=self.MPI.MAX)
        return PendingMax(request, values, result, self.peers_reached)

    def set_up_exchange(self, backend) -> None:
        """Collective, before the first step, each rank's device current: how
        the gradients will travel (`exchange` says which way and why)."""
        if backend.xp is not np:
            self._device(None)

    @property
    def exchange(self) -> str:
        if self._device_reducer is not None:
            return self._device_reducer.description
        return "MPI all-reduce of host buffers"

    def _device(self, buffer):
        if self._device_reducer is None:
            from .nccl import make_device_reducer

            self._device_reducer = make_device_reducer(self.comm, self.MPI, self.rank, self.size)
        return self._device_reducer

    def gather_streams(self, part: np.ndarray, axis: int) -> np.ndarray | None:
        """Every rank's equal part of a host array, concatenated in rank order
        along `axis`, on rank 0 (None elsewhere)."""
        part = np.ascontiguousarray(np.moveaxis(part, axis, 0))
        whole = np.empty((self.size, *part.shape), dtype=part.dtype) if self.rank == 0 else None
        with self.peers_reached("gathering the hidden states"):
            self.comm.Gather(part, whole, root=0)
        if whole is None:
            return None
        return np.moveaxis(whole.reshape(-1, *part.shape[1:]), 0, axis)

    def agree(self, error: BaseException | None) -> None:
        """After a phase every rank runs (setup): when any rank failed, every
        rank raises, and only the lowest failing rank with its own error, so a
        bad input gives one `error:` line, not one per rank."""
        code = 0 if error is None else getattr(error, "exit_code", 1)
        codes = np.empty(self.size, dtype=np.int32)
        with self.peers_reached("setting up"):
            self.comm.Allgather(np.array([code], dtype=np.int32), codes)
        failed = np.flatnonzero(codes)
        if not failed.size:
            return
        if self.rank == failed[0]:
            error.agreed = True  # every rank knows: no need to abort the job
            raise error
        raise QuietExit(int(codes[failed[0]]))

    def abort(self, code: int) -> None:
        """Ends every rank of the job (MPI_Abort): none is left waiting in a
        collective. Never returns. The caller has printed its `error:` line:
        MPI's own abort notice goes to /dev/null, and this process exits
        without unwinding even where MPI_Abort returns before the launcher
        ends it (MPICH does), so no traceback follows."""
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(ABORT_GRACE_S)  # the launcher relays the line through a pipe: let it get there first
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        try:
            self.comm.Abort(code)
        finally:
            os._exit(code)


class PendingMax:
    """An MPI_Iallreduce in flight; its buffers live until `wait`."""

    def __init__(self, request, values, result, peers_reached):
        self.request, self.values, self.result, self.peers_reached = request, values, result, peers_reached

    def wait(self) -> np.ndarray:
        with self.peers_reached("exchanging the stop flags"):
            self.request.Wait()
        return self.result
