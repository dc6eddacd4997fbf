"""Ranks that share a device: two real MPI ranks with stand-ins for CuPy's
device query and NCCL decide how device buffers are reduced. Jobs start through
tests/helpers.py (OMP_NUM_THREADS=1, a hard timeout)."""
import textwrap

import pytest
from helpers import run_job, train_args

DECISION = textwrap.dedent("""
    import sys
    import numpy as np
    from rnn_gpu.parallel import nccl
    from rnn_gpu.parallel.mpi import MpiCommunicator

    built = []

    class StandInNccl:
        '''Records that a communicator was built; reduces through MPI so the job still runs.'''
        description = nccl.NcclReducer.description
        def __init__(self, mpi_comm, rank, size):
            built.append((rank, size))
            self.comm = mpi_comm
        def allreduce_sum_(self, buffer):
            buffer.values[...] = self.comm.allreduce(buffer.values)

    class DeviceLikeBuffer:
        def __init__(self, values):
            self.values = values.copy()
        def get(self):
            return self.values.copy()
        def set(self, host):
            self.values[...] = host
        def __itruediv__(self, k):
            self.values /= k
            return self

    class DeviceBackend:
        xp = object()  # not NumPy: buffers live on a device

    comm = MpiCommunicator.from_world()
    layout = sys.argv[1]
    device = "node/0000:00:05.0" if layout == "shared" else f"node/0000:00:0{5 + comm.rank}.0"
    nccl.device_identity = lambda: device
    nccl.nccl_unavailable_reason = lambda: None
    nccl.NcclReducer = StandInNccl
    comm.set_up_exchange(DeviceBackend())
    every = [np.random.default_rng(r).standard_normal(50) for r in range(comm.size)]
    buffer = DeviceLikeBuffer(every[comm.rank])
    comm.allreduce_mean_(buffer)
    assert np.allclose(buffer.values, np.mean(every, axis=0), rtol=1e-12, atol=0)
    kind = type(comm._device_reducer).__name__
    lines = comm.comm.gather(f"rank {comm.rank}: {kind} built {len(built)}: {comm.exchange}", root=0)
    if comm.rank == 0:  # one writer: two ranks' prints may interleave
        print("\\n".join(lines), flush=True)
""")


@pytest.mark.parametrize("layout,reducer,built", [("shared", "HostStagedReducer", 0), ("distinct", "StandInNccl", 1)])
def test_ranks_sharing_a_device_reduce_through_the_host(mpiexec, layout, reducer, built):
    job = run_job(mpiexec, 2, [layout], wrapper=DECISION, timeout=120)
    assert job.returncode == 0, job.stderr
    lines = sorted(job.stdout.strip().splitlines())
    assert len(lines) == 2, job.stdout
    for rank, line in enumerate(lines):
        assert line.startswith(f"rank {rank}: {reducer} built {built}: "), line
    if layout == "shared":
        assert "ranks 0, 1 share the device node/0000:00:05.0" in lines[0]
    else:
        assert "NCCL" in lines[0]


def test_shared_device_lists_the_ranks_of_the_first_shared_device():
    from rnn_gpu.parallel.nccl import shared_device

    assert shared_device(["a", "b", "c"]) is None
    assert shared_device([None, None]) is None  # no CuPy: nothing known, nothing shared
    assert shared_device(["a", "b", "a", "b"]) == ("a", [0, 2])


def test_the_run_description_says_how_gradients_travel(mpiexec, small_corpus, tmp_path):
    args = [a for a in train_args(small_corpus, tmp_path / "run", "--steps", "3") if a != "--quiet"]
    job = run_job(mpiexec, 2, args)
    assert job.returncode == 0, job.stderr
    assert "gradients: MPI all-reduce of host buffers" in job.stderr.splitlines()
