"""Every way an MPI job ends badly prints its `error:` line and nothing else:
an error on one rank only (expected or not), a signal to the launcher, a
rank killed with SIGKILL, a corpus window beyond the vocabulary on one rank.
Jobs start through tests/helpers.py (OMP_NUM_THREADS=1, a hard timeout)."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import job_env, rnn_gpu_command, run_job, train_args, training_ranks, wait_for_step

from rnn_gpu.data import prepared as prep

FAIL_ON_ONE_RANK = textwrap.dedent("""
    import os, sys
    from rnn_gpu import model
    from rnn_gpu.cli import main

    class InjectedFault(RuntimeError):
        pass

    if os.environ.get("PMI_RANK") in sys.argv[1].split(","):
        original, calls = model.CharRNN.loss_and_grads_on_device, [0]
        def failing(self, *args):
            calls[0] += 1
            if calls[0] == 3:
                raise InjectedFault("injected on rank " + os.environ["PMI_RANK"])
            return original(self, *args)
        model.CharRNN.loss_and_grads_on_device = failing
    sys.exit(main(sys.argv[2:]))
""")


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "Abort(" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), stderr  # nothing but error lines
    return lines


@pytest.mark.parametrize("ranks", ["0", "1"])
def test_an_unexpected_error_on_one_rank_is_one_line(mpiexec, small_corpus, tmp_path, ranks):
    job = run_job(mpiexec, 2, [ranks, *train_args(small_corpus, tmp_path / "run", "--steps", "1000")],
                  wrapper=FAIL_ON_ONE_RANK, timeout=120)
    assert job.returncode == 1
    assert error_lines(job.stderr) == [f"error: unexpected InjectedFault: injected on rank {ranks}"]


def test_an_error_on_every_rank_leaves_no_traceback(mpiexec, small_corpus, tmp_path):
    """As NCCL's refusal of a shared device did: each rank reports, none prints a traceback."""
    job = run_job(mpiexec, 2, ["0,1", *train_args(small_corpus, tmp_path / "run", "--steps", "1000")],
                  wrapper=FAIL_ON_ONE_RANK, timeout=120)
    assert job.returncode == 1
    assert 1 <= len(error_lines(job.stderr)) <= 2  # the first rank to abort may end the other before it speaks


def start(mpiexec, out, corpus):
    args = train_args(corpus, out, "--steps", "100000", "--log-every", "1", "--checkpoint-every", "5")
    return subprocess.Popen([mpiexec, "-n", "2", *rnn_gpu_command(*args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=job_env())


@pytest.mark.parametrize("fault", ["SIGINT", "SIGTERM", "kill -9 rank"])
def test_signals_and_dead_ranks_leave_one_line_at_most(mpiexec, small_corpus, tmp_path, fault):
    proc = start(mpiexec, tmp_path / "run", small_corpus)
    try:
        wait_for_step(tmp_path / "run" / "metrics.jsonl", 6, proc, timeout=120)
        if fault == "kill -9 rank":
            ranks = training_ranks(proc.pid)
            assert ranks, "no rank processes found"
            os.kill(ranks[-1], signal.SIGKILL)
        else:
            proc.send_signal(getattr(signal, fault))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = error_lines(err)
    if fault == "kill -9 rank":  # the launcher ends the other rank with SIGKILL: no rank can speak
        assert proc.returncode == 9 and lines == []
    else:
        assert proc.returncode == 128 + getattr(signal, fault) and len(lines) == 1 and fault in lines[0]


@pytest.mark.parametrize("part", ["training", "validation"])
def test_a_window_beyond_the_vocabulary_ends_the_job_with_one_line(mpiexec, small_corpus, tmp_path, part):
    """Only the rank that reads the bad window (rank 1's training streams, rank
    0's validation share) meets it: it reports and ends the job."""
    meta = prep.prepare(str(small_corpus), "chars", tmp_path / "p")
    length = json.loads(meta.read_text())["length"]
    train_length = length - int(length * 0.1)
    offset = 2 * (train_length // 4) + 3 if part == "training" else 5  # training: stream 2 of 4, rank 1's
    data = tmp_path / "p.bin"
    raw = bytearray(data.read_bytes())
    raw[offset + (0 if part == "training" else train_length)] = 200
    data.write_bytes(bytes(raw))
    job = run_job(mpiexec, 2, train_args(meta, tmp_path / "run", "--steps", "20", "--eval-every", "2"),
                  timeout=120)
    assert job.returncode == 2
    assert error_lines(job.stderr) == [f"error: the corpus holds symbol id 200 at offset {offset:,} of its {part} "
                                       f"part, beyond its vocabulary of {len(prep.load_prepared(meta).vocab)} "
                                       "symbols (a damaged or mismatched data file)"]


LIBRARY_NOISE = textwrap.dedent("""
    import os, sys
    from rnn_gpu.parallel import make_communicator

    comm = make_communicator("mpi")
    os.write(2, b"Abort(1) on node 0: Fatal error in a library\\n")  # what MPI's C code writes, as it does
    print(f"error: rank {comm.rank}", file=sys.stderr, flush=True)
""")


@pytest.mark.parametrize("keep", ["", "1"])
def test_the_mpi_library_own_messages_are_dropped_unless_asked_for(mpiexec, keep):
    env = {**job_env(), "RNN_GPU_MPI_STDERR": keep}
    job = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", LIBRARY_NOISE], capture_output=True, text=True,
                         timeout=120, env=env)
    assert job.returncode == 0, job.stderr
    assert job.stderr.count("Fatal error in a library") == (2 if keep else 0), job.stderr
    if not keep:  # kept, the two ranks' library lines may interleave with the others
        assert sorted(job.stderr.splitlines()) == ["error: rank 0", "error: rank 1"]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_a_command_is_set_up_is_one_line(monkeypatch, capsys, signum):
    """A signal before run_command's own handling begins (the soak met one there):
    the signal's handler raises where the process is; main reports it."""
    from rnn_gpu.cli import process as cli

    def build_parser():
        os.kill(os.getpid(), signum)  # delivered here, as a signal from outside would be
        raise AssertionError("the signal did not interrupt")

    monkeypatch.setattr(cli, "build_parser", build_parser)
    assert cli.main(["train"]) == 128 + signum  # SIGINT's KeyboardInterrupt exits 130 as well
    assert len(error_lines(capsys.readouterr().err)) == 1


EARLY_SIGNAL = textwrap.dedent("""
    import os, signal, sys
    from rnn_gpu.cli import process as cli

    if os.environ.get("PMI_RANK") == "1":  # a signal to one rank before its communicator exists
        original = cli.build_parser
        def build_parser():
            os.kill(os.getpid(), signal.SIGTERM)
            return original()
        cli.build_parser = build_parser
    sys.exit(cli.main(sys.argv[1:]))
""")


def test_a_signal_to_one_rank_before_mpi_starts_ends_the_job(mpiexec, small_corpus, tmp_path):
    """Rank 0 waits in MPI's start-up for rank 1, which no abort can reach: rank 1
    ends by the signal itself, and the launcher ends rank 0."""
    job = run_job(mpiexec, 2, train_args(small_corpus, tmp_path / "run", "--steps", "1000"), wrapper=EARLY_SIGNAL,
                  timeout=60)
    assert job.returncode != 0
    assert len(error_lines(job.stderr)) <= 1  # rank 1 is not rank 0: it ends without a line of its own
