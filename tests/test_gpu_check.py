"""bench/gpu_check.py's measuring code on the OpenCL runner, with the NumPy
loop as the baseline. The GPU check runs only where a GPU is lent, so every
test run makes sure its report comes out whole: rows for every variant,
errors against the float64 loop, plain JSON."""
import json

import pytest

from bench import gpu_check as gpu_check_module
from rnn_gpu.backends import NumpyBackend


@pytest.fixture(scope="module")
def gpu_check():
    return gpu_check_module


def test_recurrence_rows(gpu_check, opencl):
    rows = gpu_check.benchmark(opencl, NumpyBackend(), flops=1e11, configs=[(37, 5)], T=3)
    json.dumps(rows)
    by_system = {r["system"]: r for r in rows}
    assert set(by_system) == {"cublas_per_step", *gpu_check.VARIANTS}
    assert by_system["persistent"]["status"] == "does not fit"  # no cooperative launch in OpenCL
    for variant in ("small", "tiled", "per_step"):
        row = by_system[variant]
        assert row["status"] == "ok", row
        assert row["unwritten"] == 0
        assert row["fwd_rel_error"] < 1e-5 and row["bwd_rel_error"] < 1e-5
        assert row["fwd_us_per_step"] > 0 and row["bwd_us_per_step"] > 0


def test_long_sequence_rows(gpu_check, opencl):
    rows = gpu_check.long_sequence_rows(NumpyBackend(), opencl, 16, 4, lengths=(2, 4))
    json.dumps(rows)
    assert [(r["variant"], r["T"]) for r in rows] == [("small", 2), ("small", 4), ("tiled", 2), ("tiled", 4)]


def test_torch_recurrence_rows(gpu_check):
    pytest.importorskip("torch")
    rows = gpu_check.torch_recurrence_rows("cpu", [(16, 4)], lengths=(3, 5))
    json.dumps(rows)
    assert [(r["T"], r["system"], r["status"]) for r in rows] == [(3, "torch-cpu-fp32", "ok"),
                                                                   (5, "torch-cpu-fp32", "ok")]
    assert all(r["fwd_us_per_step"] > 0 and r["cudnn_algo"] is None for r in rows)


def test_torch_recurrence_rows_say_when_torch_cannot_run(gpu_check):
    from rnn_gpu.bench import torch_unavailable_reason

    if torch_unavailable_reason("cuda") is None:
        pytest.skip("PyTorch sees a GPU here")
    assert gpu_check.torch_recurrence_rows("cuda", [(16, 4)])[0]["status"].startswith("not run")


@pytest.mark.slow  # times training steps of each backend
def test_training_step_rows(gpu_check):
    result = gpu_check.training_step_rows(("numpy", "seed"), [(16, 4, 8, 1), (16, 4, 8, 2)], 0.2)
    json.dumps(result)
    assert [[r["backend"] for r in c["rows"]] for c in result["configs"]] == [["numpy", "seed"], ["numpy"]]


@pytest.mark.slow  # times runs of the trainer, the bench command and PyTorch
def test_trainer_rows(gpu_check, tmp_path):
    """The trainer section on the CPU: `rnn-gpu train` in a fresh process, its
    step as `bench` times it, and PyTorch's (CPU) with the same recipe."""
    pytest.importorskip("torch")
    rows = gpu_check.trainer_rows("numpy", "torch-cpu", configs=[(2, 16, 4, 8)], dropouts=(0.0, 0.3), steps=40,
                                  seconds=0.3, workdir=tmp_path)
    json.dumps(rows)
    assert [(r["system"], r["dropout"]) for r in rows] == [
        (s, p) for p in (0.0, 0.3) for s in ("rnn-gpu train --backend numpy", "rnn-gpu bench --backend numpy",
                                             "torch-cpu")]
    for row in rows:
        assert row["status"] == "ok", row
        assert (row["layers"], row["hidden"], row["batch"], row["seq"]) == (2, 16, 4, 8)
        assert row["chars_per_s"] > 0
