"""A signal while `rnn-gpu prepare` writes: one `error:` line, the signal's
exit code, and nothing half-written left behind. (Signals to training:
test_resume.py; to MPI jobs: test_mpi_faults.py.)"""
import signal
import subprocess
import sys
import time

import pytest

SLOW_PREPARE = """
import sys, time
import rnn_gpu.data.prepared as prep
import rnn_gpu.data.sources as sources
from rnn_gpu.cli import main
encode = prep.encoded_chunks
def slowly(paths, vocab, *rest):
    for ids in encode(paths, vocab, *rest):
        time.sleep(0.05)
        yield ids
sources.CHUNK_BYTES, prep.encoded_chunks = 64, slowly
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_prepare_leaves_nothing_half_written(corpus_file, tmp_path, signum):
    """Prepare's writes are slowed down here so the signal lands mid-write."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, "prepare", str(corpus_file), "-o", str(out / "p")],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob(".p.bin.*.tmp")):
        assert time.monotonic() < deadline and proc.poll() is None, "prepare never started writing"
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err.strip() == f"error: terminated by {signal.Signals(signum).name}", err
    assert list(out.iterdir()) == []

