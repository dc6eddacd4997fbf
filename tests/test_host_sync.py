"""The training loop never waits for the device between the steps that need
its results (log lines, evaluations, checkpoints, the end), a non-finite
step is skipped on the device, and stop flags decide one step late."""
import os
import signal

import numpy as np
import pytest

from rnn_gpu.backends.base import NumpyBackend
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.training import Interrupted, TrainConfig, Trainer, train
from rnn_gpu.training import setup as training_setup


class Watched(np.ndarray):
    """A 0-d result whose conversion to a Python number is recorded."""
    events: list

    def __float__(self):
        self.events.append("float")
        return np.ndarray.__float__(self)

    def __bool__(self):
        self.events.append("bool")
        return np.ndarray.__bool__(self)

    def item(self, *args):
        self.events.append("item")
        return np.ndarray.item(self, *args)


class CountingBackend(NumpyBackend):
    """NumPy, with every way the host can wait for a device recorded: the
    copies to the host, synchronize, and reading the loss as a number. (What
    NumPy's own ops read of their own memory, such as the update's flag, a
    device backend does inside its kernels.)"""

    def __init__(self, events):
        super().__init__()
        self.events = events

    def to_host(self, a):
        self.events.append("to_host")
        return super().to_host(a)

    def synchronize(self):
        self.events.append("synchronize")

    def softmax_cross_entropy_(self, O, targets):
        loss = np.asarray(super().softmax_cross_entropy_(O, targets)).view(Watched)
        loss.events = self.events
        return loss


def reads_per_step(monkeypatch, cfg, corpus_file, tmp_path):
    """{step: host reads after it}, and whether any came inside a step."""
    events = []
    monkeypatch.setattr(training_setup, "get_backend", lambda name: CountingBackend(events))
    original = Trainer.train_step

    def marked(self, *args):
        events.append(("start", self.step + 1))
        result = original(self, *args)
        events.append(("end", self.step + 1))
        return result

    monkeypatch.setattr(Trainer, "train_step", marked)
    train(cfg, corpus_file, tmp_path, progress=False)
    inside, after, current, in_step = [], {}, None, False
    for e in events:
        if isinstance(e, tuple):
            current, in_step = e[1], e[0] == "start"
        elif in_step:
            inside.append((current, e))
        elif current is not None:
            after[current] = after.get(current, 0) + 1
    return inside, after


@pytest.mark.parametrize("options", [{}, {"clip_norm": 1.0, "skip_nonfinite": True, "optimizer": "adagrad"}])
def test_no_host_read_between_log_steps(monkeypatch, corpus_file, tmp_path, options):
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=25, log_every=10, checkpoint_every=20, val_fraction=0,
                      backend="numpy", **options)
    inside, after = reads_per_step(monkeypatch, cfg, corpus_file, tmp_path)
    assert inside == []  # no step waits for the device
    assert set(after) == {10, 20, 25}  # log lines at 10, 20; a checkpoint at 20; the end at 25
    assert all(after[s] >= 2 for s in after)  # each reads at least the loss and the health counts


def test_evaluations_are_the_only_other_reads(monkeypatch, corpus_file, tmp_path):
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=12, log_every=100, checkpoint_every=100, eval_every=5,
                      val_chars=64, backend="numpy")
    inside, after = reads_per_step(monkeypatch, cfg, corpus_file, tmp_path)
    assert inside == [] and set(after) == {5, 10, 12}


@pytest.mark.parametrize("update", ["adagrad", "adam"])
def test_a_flagged_update_leaves_everything_as_it_was(backend, rng, update):
    xp = backend.xp
    p, g = (backend.asarray(rng.normal(size=300), dtype="float32") for _ in range(2))
    m, v = (backend.asarray(rng.uniform(0, 1, size=300), dtype="float32") for _ in range(2))
    g[7] = np.nan
    before = [backend.to_host(a).copy() for a in (p, m, v)]
    ok = backend.step_health_(g, g[:1], xp.zeros(3, dtype=np.int64), 5)
    assert not bool(backend.to_host(ok)[0])
    if update == "adagrad":
        backend.adagrad_update(p, g, m, 0.1, 1e-8, 5.0, ok)
    else:
        backend.adam_update(p, g, m, v, 0.01, 0.9, 0.999, 1e-8, 5.0, ok)
    for a, b in zip((p, m, v), before, strict=True):
        assert np.array_equal(backend.to_host(a), b, equal_nan=True)
    g[7] = 1.0
    ok = backend.step_health_(g, g[:1], xp.zeros(3, dtype=np.int64), 6)
    backend.adagrad_update(p, g, m, 0.1, 1e-8, 5.0, ok)
    assert not np.array_equal(backend.to_host(p), before[0])  # a finite step does update


def test_step_health_counts_the_first_bad_step(backend, rng):
    xp = backend.xp
    health = xp.zeros(3, dtype=np.int64)
    buffer = backend.asarray(rng.normal(size=50), dtype="float32")
    for step, (where, value) in enumerate([(None, 0), (3, np.inf), (0, np.nan), (None, 0)], start=1):
        b = buffer.copy()
        if where is not None:
            b[where] = value
        ok = backend.step_health_(b, b[:1], health, step)
        assert bool(backend.to_host(ok)[0]) == (where is None)
    # steps 2 and 3 were bad; the first of them was step 2, whose loss (element 0) was finite
    assert backend.to_host(health).tolist() == [2, 2, 0]


def test_a_signal_stops_every_rank_after_the_next_step(monkeypatch, corpus_file, tmp_path):
    original = Trainer.train_step

    def signalling(self, *args):
        if self.step + 1 == 6:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 6: raised after it, all stop after step 7
        return original(self, *args)

    monkeypatch.setattr(Trainer, "train_step", signalling)
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=50, val_fraction=0, backend="numpy")
    with pytest.raises(Interrupted) as caught:
        train(cfg, corpus_file, tmp_path, progress=False)
    assert caught.value.step == 7 and caught.value.signum == signal.SIGTERM
    assert load_checkpoint(tmp_path).step == 7
