"""Data-parallel training under a real MPI launcher: N ranks with B/N streams
each against one process with B streams, failures, signals and resumes.

Each job runs `mpiexec -n N` as a subprocess with OMP_NUM_THREADS=1 and a
hard timeout (tests/helpers.py), so a hung collective fails a test instead of
the suite. CI sets RNN_GPU_REQUIRE_MPI=1: there a missing MPI fails instead of
skipping (the `mpiexec` fixture, conftest.py, which also marks its tests
`slow`).
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from helpers import (
    TIMEOUT,
    job_env,
    rnn_gpu_command,
    run_job,
    run_single,
    train_args,
    training_ranks,
    wait_for_step,
)

from rnn_gpu.checkpoint import load_checkpoint


@pytest.mark.parametrize("dtype,extra,tol", [("float64", [], 1e-12), ("float32", [], 1e-6),
                                             ("float64", ["--layers", "2", "--dropout", "0.1"], 1e-12),
                                             ("float64", ["--tie-weights", "--clip-norm", "0.5"], 1e-12)])
def test_ranks_equal_one_process(mpiexec, small_corpus, tmp_path, dtype, extra, tol):
    flags = ["--steps", "50", "--dtype", dtype, *extra]
    one = run_single(train_args(small_corpus, tmp_path / "one", *flags))
    assert one.returncode == 0, one.stderr
    reference = load_checkpoint(tmp_path / "one")
    for n in (2, 4):
        job = run_job(mpiexec, n, train_args(small_corpus, tmp_path / f"n{n}", *flags))
        assert job.returncode == 0, job.stderr
        got = load_checkpoint(tmp_path / f"n{n}")
        assert got.step == 50 and got.position == reference.position
        for k in reference.params:
            np.testing.assert_allclose(got.params[k], reference.params[k], rtol=0, atol=tol, err_msg=f"{n} ranks {k}")
        np.testing.assert_allclose(got.h, reference.h, rtol=0, atol=tol * 10)  # gathered in rank order
        records = [json.loads(line) for line in (tmp_path / f"n{n}" / "metrics.jsonl").read_text().splitlines()]
        assert records[-1]["world_size"] == n and 0 <= records[-1]["allreduce_share"] < 1
        singles = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [r["step"] for r in singles]  # one writer, no duplicates
        assert records[-1]["val_loss"] == pytest.approx(singles[-1]["val_loss"], rel=1e-5)
        assert records[-1]["symbols"] == singles[-1]["symbols"]  # global symbols


CHECKSUM_WRAPPER = textwrap.dedent("""
    import sys, zlib
    import numpy as np
    from rnn_gpu import training as train_module
    from rnn_gpu.cli import main

    original = train_module.Trainer.checkpoint
    def checkpoint(self, path, elapsed):
        original(self, path, elapsed)
        if path.name == "checkpoint.npz":
            flat = self.backend.to_host(self.model.flat)
            print(f"rank {self.comm.rank} step {self.step} crc {zlib.crc32(flat.tobytes())}", flush=True)
    train_module.Trainer.checkpoint = checkpoint
    sys.exit(main(sys.argv[1:]))
""")


def test_all_ranks_hold_bit_identical_parameters(mpiexec, small_corpus, tmp_path):
    job = run_job(mpiexec, 4, train_args(small_corpus, tmp_path / "run", "--steps", "30", "--layers", "2",
                                         "--dropout", "0.2"), wrapper=CHECKSUM_WRAPPER)
    assert job.returncode == 0, job.stderr
    final = {int(rank): crc for rank, step, crc in re.findall(r"rank (\d+) step (\d+) crc (\d+)", job.stdout)
             if step == "30"}  # the ranks' lines may arrive interleaved with each other
    assert sorted(final) == [0, 1, 2, 3], job.stdout
    assert len(set(final.values())) == 1, job.stdout


@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)])
def test_checkpoint_resumes_under_another_number_of_ranks(mpiexec, small_corpus, tmp_path, first, second):
    flags = ["--dtype", "float64", "--lr-schedule", "constant", "--layers", "2"]
    whole = run_single(train_args(small_corpus, tmp_path / "whole", "--steps", "40", *flags))
    assert whole.returncode == 0, whole.stderr

    def part(n, args):
        return run_job(mpiexec, n, args) if n > 1 else run_single(args)

    out = tmp_path / "split"
    assert part(first, train_args(small_corpus, out, "--steps", "20", *flags)).returncode == 0
    job = part(second, train_args(small_corpus, out, "--steps", "40", "--resume", *flags))
    assert job.returncode == 0, job.stderr
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(out)
    assert a.step == b.step == 40 and a.h.shape == b.h.shape == (2, 4, 12)
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=0, atol=1e-12, err_msg=k)


def test_only_rank_zero_reports_and_writes(mpiexec, small_corpus, tmp_path):
    job = run_job(mpiexec, 2, train_args(small_corpus, tmp_path / "run", "--steps", "10"))
    assert job.returncode == 0, job.stderr
    assert job.stderr == "" and len(job.stdout.strip().splitlines()) == 1 and job.stdout.startswith("step 10:")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.npz", "checkpoint.npz", "metrics.jsonl"]


@pytest.mark.parametrize("args,message", [
    (["train", "nosuch.txt", "--out", "OUT"], "not"),
    (["train", "--out", "OUT", "--hidden", "0"], "--hidden"),
    (["train", "CORPUS", "--out", "OUT", "--batch", "3", "--steps", "2"], "not divisible by the 2 processes"),
])
def test_bad_input_gives_one_error_line(mpiexec, small_corpus, tmp_path, args, message):
    args = [str(small_corpus) if a == "CORPUS" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    job = run_job(mpiexec, 2, args)
    lines = job.stderr.strip().splitlines()
    assert job.returncode == 2 and len(lines) == 1, job.stderr
    assert lines[0].startswith("error: ") and message in lines[0] and "Traceback" not in job.stderr
    assert not (tmp_path / "out").exists()


def test_a_time_budget_stops_every_rank_together(mpiexec, small_corpus, tmp_path):
    job = run_job(mpiexec, 2, train_args(small_corpus, tmp_path / "run", "--time", "2", "--steps", "1000000"))
    assert job.returncode == 0, job.stderr
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["elapsed_s"] >= 2 and load_checkpoint(tmp_path / "run").step == last["step"]


def test_other_commands_run_once_per_job(mpiexec, small_corpus, tmp_path):
    job = run_job(mpiexec, 2, train_args(small_corpus, tmp_path / "run", "--steps", "5"))
    assert job.returncode == 0, job.stderr
    job = run_job(mpiexec, 2, ["sample", str(tmp_path / "run"), "--length", "30", "--seed", "4"])
    assert job.returncode == 0 and len(job.stdout) == 31, job.stdout


def test_sigterm_stops_every_rank_at_the_same_step(mpiexec, small_corpus, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([mpiexec, "-n", "2", *rnn_gpu_command(*train_args(small_corpus, out, "--steps", "100000",
                                                                      "--log-every", "1", "--eval-every", "1000"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=job_env())
    try:
        wait_for_step(out / "metrics.jsonl", 5, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.count("error:") == 1 and "SIGTERM" in err and "Traceback" not in err
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert load_checkpoint(out).step == last["step"]  # the gather met both ranks at this step


RAISE_WRAPPER = textwrap.dedent("""
    import os, sys
    from rnn_gpu import model
    from rnn_gpu.cli import main

    if os.environ.get("PMI_RANK") == "1":
        original, calls = model.CharRNN.loss_and_grads_on_device, [0]
        def failing(self, *args):
            calls[0] += 1
            if calls[0] == 4:
                raise MemoryError("injected on rank 1")
            return original(self, *args)
        model.CharRNN.loss_and_grads_on_device = failing
    sys.exit(main(sys.argv[1:]))
""")


def test_one_rank_failing_ends_the_job(mpiexec, small_corpus, tmp_path):
    start = time.monotonic()
    job = run_job(mpiexec, 2, train_args(small_corpus, tmp_path / "run", "--steps", "100000"), timeout=120,
                  wrapper=RAISE_WRAPPER)
    assert job.returncode != 0 and time.monotonic() - start < 120
    assert "injected on rank 1" in job.stderr


def test_killing_one_rank_ends_the_job_and_the_checkpoint_resumes(mpiexec, small_corpus, tmp_path):
    out = tmp_path / "run"
    args = train_args(small_corpus, out, "--steps", "100000", "--log-every", "1", "--checkpoint-every", "5")
    proc = subprocess.Popen([mpiexec, "-n", "2", *rnn_gpu_command(*args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=job_env())
    try:
        wait_for_step(out / "metrics.jsonl", 12, proc)
        ranks = training_ranks(proc.pid)
        assert ranks, "no rank processes found"
        os.kill(ranks[-1], signal.SIGKILL)
        start = time.monotonic()
        proc.communicate(timeout=60)
        assert time.monotonic() - start < 60
    finally:
        proc.kill()
    assert proc.returncode != 0
    saved = load_checkpoint(out)
    assert saved.step >= 10 and saved.step % 5 == 0
    resumed = run_single(train_args(small_corpus, out, "--steps", str(saved.step + 5), "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out).step == saved.step + 5


def test_a_plain_run_never_imports_mpi4py(small_corpus, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from rnn_gpu.cli import main
        assert main({train_args(small_corpus, tmp_path / 'run', '--steps', '2')!r}) == 0
        assert "mpi4py" not in sys.modules, "mpi4py imported"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env=job_env())
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


def test_launcher_detection_reads_only_the_environment():
    from rnn_gpu.parallel import env_rank, launcher_rank_and_size

    assert launcher_rank_and_size({}) is None
    assert launcher_rank_and_size({"PMI_RANK": "3", "PMI_SIZE": "4"}) == (3, 4)
    assert launcher_rank_and_size({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}) == (1, 2)
    assert launcher_rank_and_size({"SLURM_PROCID": "5", "SLURM_NTASKS": "8"}) == (5, 8)
    assert launcher_rank_and_size({"PMIX_RANK": "2"}) == (2, 0)
    assert launcher_rank_and_size({"SLURM_PROCID": "0"}) is None  # a batch script's shell, not a task
    assert env_rank({"PMI_RANK": "7", "PMI_SIZE": "8"}) == 7 and env_rank({}) == 0


STAGED_ALLREDUCE = textwrap.dedent("""
    import numpy as np
    from rnn_gpu.parallel.mpi import MpiCommunicator
    from rnn_gpu.parallel.nccl import HostStagedReducer, nccl_unavailable_reason

    class DeviceLikeBuffer:
        '''What the device path uses of a CuPy array: get(), set() and in-place division.'''
        def __init__(self, values):
            self.values, self.gets, self.sets = values.copy(), 0, 0
        def get(self):
            self.gets += 1
            return self.values.copy()
        def set(self, host):
            self.sets += 1
            self.values[...] = host
        def __itruediv__(self, k):
            self.values /= k
            return self

    comm = MpiCommunicator.from_world()
    rng = np.random.default_rng(comm.rank)
    mine = rng.standard_normal(1000)
    every = [np.random.default_rng(r).standard_normal(1000) for r in range(comm.size)]
    buffer = DeviceLikeBuffer(mine)
    comm.allreduce_mean_(buffer)
    assert nccl_unavailable_reason() is not None  # no CuPy here: the host-staged reducer
    assert isinstance(comm._device_reducer, HostStagedReducer)
    assert buffer.gets == buffer.sets == 1
    assert np.allclose(buffer.values, np.mean(every, axis=0), rtol=1e-12, atol=0)
    passed = comm.comm.allreduce(1)  # every rank got here, its checks passed
    if comm.rank == 0:
        print("ok", passed)
""")


def test_device_buffers_without_nccl_go_through_the_host(mpiexec):
    """The CuPy-without-NCCL path (copy out, MPI all-reduce in place, copy back)
    executed on two ranks with a stand-in for the device array."""
    job = run_job(mpiexec, 2, [], wrapper=STAGED_ALLREDUCE)
    assert job.returncode == 0, job.stderr
    assert job.stdout.strip() == "ok 2", job.stdout
