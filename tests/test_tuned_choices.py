"""The kernel autotuner's choices are kept per device and shape (the
cache directory, checkpoint.npz) and adopted instead of timing again.
A stand-in for CudaKernels: the OpenCL runner (PoCL) with autotuning on and
a timer that draws random times, so two runners left to themselves pick
differently, and only adoption makes them agree."""
import numpy as np
import pytest

from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.training import TrainConfig, train
from rnn_gpu.training import setup as training_setup
from rnn_gpu.tuning_cache import FILENAME, load_kernel_choices


@pytest.fixture
def stand_in(opencl):
    from rnn_gpu.backends.opencl_backend import OpenCLBackend
    from rnn_gpu.kernels.opencl_runner import OpenCLKernels

    class TimedKernels(OpenCLKernels):
        autotune = True
        device_label = "stand-in device"

        def __init__(self, seed):
            super().__init__()
            self.rng, self.timed = np.random.default_rng(seed), 0

        def _time(self, plan, X, W, Hs, init, backward):
            self.timed += 1
            return float(self.rng.random())

    def make(seed):
        backend = OpenCLBackend()
        backend.kernels = TimedKernels(seed)
        return backend

    return make


def inputs(rng, T=6, B=4, H=16):
    P, G = rng.uniform(-1, 1, (2, T, B, H)).astype(np.float32)
    W = (rng.uniform(-1, 1, (H, H)) / np.sqrt(H)).astype(np.float32)
    return P, W, np.zeros((B, H), np.float32)


def test_choices_travel_and_are_not_timed_again(stand_in, rng):
    P, W, h0 = inputs(rng)
    first = stand_in(1).kernels
    chosen = first.tuned_plan(P, W, P, h0, False)
    assert first.timed > 1 and chosen is not None
    rows = first.tuned_choices()
    assert [r[:3] for r in rows] == [["stand-in device", "tuned_plan", [6, 4, 16, "<f4", None]]]
    later = stand_in(2).kernels
    assert later.keep_tuned_choices(rows) == 1
    assert later.tuned_plan(P, W, P, h0, False) == chosen and later.timed == 0
    other = stand_in(3).kernels
    other.device_label = "another device"
    assert other.keep_tuned_choices(rows) == 0  # another device's choices are not this one's
    damaged = [["stand-in device", "tuned_plan", [6, 4, 16, "<f4", None], {"tile": 3}]]
    assert other.keep_tuned_choices(damaged) == 0


def run(stand_in, monkeypatch, tmp_path, cache, seed, corpus_file, steps, resume=False):
    backend = None

    def make(name):
        nonlocal backend
        backend = stand_in(seed)
        return backend

    monkeypatch.setenv("RNN_GPU_CACHE", str(cache))
    monkeypatch.setattr(training_setup, "get_backend", make)
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=steps, val_fraction=0, backend="opencl")
    train(cfg, corpus_file, tmp_path, progress=False, resume=resume)
    return backend


def test_a_resume_takes_its_checkpoints_choices(stand_in, monkeypatch, corpus_file, tmp_path):
    first = run(stand_in, monkeypatch, tmp_path / "run", tmp_path / "cache1", 1, corpus_file, 10)
    assert first.kernels.timed > 0
    saved = load_checkpoint(tmp_path / "run").kernel_choices
    assert saved == load_kernel_choices([tmp_path / "cache1"]) and len(saved) >= 1
    # An empty cache: only the checkpoint can tell the resumed run its plans.
    resumed = run(stand_in, monkeypatch, tmp_path / "run", tmp_path / "cache2", 2, corpus_file, 20, resume=True)
    assert resumed.kernels.timed == 0
    assert load_checkpoint(tmp_path / "run").kernel_choices == saved
    # A new run on the same device takes the cache's plans.
    fresh = run(stand_in, monkeypatch, tmp_path / "run2", tmp_path / "cache1", 3, corpus_file, 5)
    assert fresh.kernels.timed == 0 and (tmp_path / "cache1" / FILENAME).exists()


def test_softmax_variants_travel_with_the_launch_plans(stand_in):
    first = stand_in(1).kernels
    rows = [[first.device_label, "softmax_variant", [2048, 8000, "<f4"], "groups"],
            [first.device_label, "softmax_variant", [64, 65, "<f8"], "rows"]]
    assert first.keep_tuned_choices(rows) == 2
    assert sorted(first.tuned_choices()) == sorted(rows)
    assert first.keep_tuned_choices([[first.device_label, "softmax_variant", [4, 4, "<f4"], "fastest"],
                                     [first.device_label, "no such table", [4, 4, "<f4"], "rows"]]) == 0
