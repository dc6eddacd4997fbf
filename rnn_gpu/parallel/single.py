"""One process: the communicator whose collectives do nothing."""
from __future__ import annotations

import numpy as np


class SingleCommunicator:
    rank, size, local_rank, local_size = 0, 1, 0, 1
    name = "single"
    exchange = "none (one process)"

    @property
    def master_process(self) -> bool:
        return True

    def allreduce_mean_(self, buffer) -> None:
        """Averages `buffer` over all ranks, in place."""

    def allreduce_sum_(self, buffer) -> None:
        """Sums `buffer` over all ranks, in place."""

    def start_allreduce_max(self, values: np.ndarray):
        """The element-wise maximum of a small host array over all ranks, begun
        now and read with `.wait()` later (one process: at once)."""
        return Ready(values)

    def gather_streams(self, h: np.ndarray, axis: int) -> np.ndarray:
        """Every rank's part of a host array, concatenated in rank order along `axis` (on rank 0)."""
        return h

    def agree(self, error: BaseException | None) -> None:
        """Re-raises `error` when this process failed (see MpiCommunicator.agree)."""
        if error is not None:
            raise error

    def abort(self, code: int) -> None:
        """Ends the whole job with `code` (one process: nothing else to end)."""

    def set_up_exchange(self, backend) -> None:
        """Decides how gradients travel between ranks (one process: they do not)."""

    def use_local_device(self, backend) -> None:
        """Selects this rank's GPU (one process: the current one)."""

    def set_cpu_threads(self) -> int | None:
        """Limits BLAS threads to this rank's share of the node (one process: all of them)."""
        return None


class Ready:
    """A collective that has finished: `wait()` gives its result."""

    def __init__(self, result):
        self.result = result

    def wait(self):
        return self.result
