"""`rnn-gpu bench`: the row it reports, the comparison files it writes and
the wall time --seconds bounds (the timings themselves are measured in bench/,
not asserted here)."""
import json
import subprocess
import sys
import time

import pytest

from rnn_gpu import bench
from rnn_gpu.backends import BackendUnavailable, cupy_unavailable_reason
from rnn_gpu.cli import main

KEYS = {"chars_per_s", "step_ms", "recurrence_fwd_us_per_step", "recurrence_bwd_us_per_step", "peak_mem_bytes",
        "backend", "device", "system", "layers", "hidden", "batch", "seq", "dropout"}


def test_single_run_json(capsys):
    assert main(["bench", "--backend", "numpy", "--hidden", "16", "--batch", "4", "--seq", "8", "--seconds",
                 "1", "--json"]) == 0  # a quarter of it left: the recurrence timing fits on a busy machine too
    row = json.loads(capsys.readouterr().out)
    assert set(row) >= KEYS and row["backend"] == "numpy"
    assert row["chars_per_s"] > 0 and row["recurrence_fwd_us_per_step"] > 0 and row["peak_mem_bytes"] > 0


@pytest.mark.slow  # times every system for its share of --seconds
def test_compare_writes_table_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = bench.compare(tmp_path, 0.2, systems=("numpy", "seed", "torch-cuda"), configs=((16, 4, 8),),
                           log=lambda text: None)
    rows = result["configs"][0]["rows"]
    cuda_here = bench.torch_unavailable_reason("cuda") is None
    assert [r["backend"] for r in rows] == ["numpy", "seed", *(["torch-cuda"] if cuda_here else [])]
    assert ("torch-cuda" in result["skipped"]) == (not cuda_here)
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(result))
    assert "| 16 | 4 | 8 | 1 | 0 | numpy |" in (tmp_path / "bench.md").read_text()
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_seed_loop_learns():
    """The seed's reference step is a real training step: its loss falls."""
    step, _ = bench.make_seed_step(H=16, T=10, vocab=5)
    losses = [step() for _ in range(300)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="a GPU is usable here")
def test_unavailable_system_is_an_error(capsys):
    assert main(["bench", "--backend", "cupy", "--seconds", "0.1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow  # times PyTorch against a budget of seconds
def test_torch_rows_time_the_recurrence_alone_too():
    pytest.importorskip("torch")
    row = bench.run_one("torch-cpu", 16, 4, 8, 6.0)  # a quarter of it left for the recurrence timing
    assert row["device"].endswith("float32, TF32 off")
    assert row["recurrence_fwd_us_per_step"] > 0 and row["recurrence_bwd_us_per_step"] >= 0
    assert row["cudnn_algo"] is None and row["recurrence_cudnn_algo"] is None  # no cuDNN on the CPU
    if bench.torch_unavailable_reason("cuda") is not None:
        with pytest.raises(BackendUnavailable, match="torch-cuda-bf16"):
            bench.make_system("torch-cuda-bf16", 16, 4, 8)


@pytest.mark.slow  # a second of timing by design, in a fresh process
def test_bench_seconds_bounds_the_wall_time():
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", "bench", "--backend", "numpy", "--hidden", "64",
                           "--batch", "8", "--seq", "16", "--seconds", "1", "--json"], capture_output=True, text=True,
                          timeout=300)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["chars_per_s"] > 0 and elapsed < 1 + 15  # the second, plus start-up and the recurrence timing

