"""The learning-rate schedule against its formulas, and bounded validation
against a plain evaluation of exactly the windows it claims."""
import json
import math

import numpy as np
import pytest

from rnn_gpu import CharRNN
from rnn_gpu.data import evaluation_streams, evaluation_windows
from rnn_gpu.schedule import LRSchedule
from rnn_gpu.training import TrainConfig, evaluate, train


def test_warmup_then_cosine_to_min_lr():
    s = LRSchedule(0.01, "cosine", warmup=10, min_lr=0.001, steps=110)
    assert [s(k) for k in (1, 5, 10)] == pytest.approx([0.001, 0.005, 0.01])
    assert s(11) == pytest.approx(0.01)  # the decay starts at the top
    assert s(61) == pytest.approx(0.001 + 0.009 * 0.5)  # half way through the 100 decay steps
    assert s(111) == pytest.approx(0.001) and s(500) == pytest.approx(0.001)
    lrs = [s(k) for k in range(11, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_cosine_progress_is_the_larger_of_steps_and_time():
    s = LRSchedule(1.0, "cosine", min_lr=0.0, steps=10**8, seconds=600)
    assert s(2, elapsed=300) == pytest.approx(0.5)  # time-bound: half the budget, half way down
    assert s(2, elapsed=600) == pytest.approx(0.0)
    by_steps = LRSchedule(1.0, "cosine", min_lr=0.0, steps=100, seconds=10**6)
    assert by_steps(51, elapsed=1) == pytest.approx(0.5)
    assert LRSchedule(1.0, "cosine", steps=100)(101) == pytest.approx(0.1)  # default min: a tenth


def test_constant_schedule_and_bad_kind():
    s = LRSchedule(0.3, "constant", warmup=3, steps=10)
    assert [s(k) for k in (1, 2, 3, 4, 10, 1000)] == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="schedule"):
        LRSchedule(0.1, "linear")


@pytest.mark.parametrize("length,batch,seq,cap", [(10_000, 8, 16, 1_000), (10_000, 8, 16, 0), (5_000, 32, 64, 700),
                                                  (999, 4, 10, 10**9), (300, 64, 8, 50)])
def test_evaluation_windows_cover_exactly_what_they_say(length, batch, seq, cap):
    data = np.arange(length)  # each symbol is its own position
    n_streams, spacing, stream_len = evaluation_streams(length, batch, seq, cap)
    seen = [w.copy() for w in evaluation_windows(data, batch, seq, cap)]
    assert all(w.shape[1] == n_streams and w.shape[0] <= seq + 1 for w in seen)
    for s in range(n_streams):  # each stream: one contiguous run, windows overlapping by the carried symbol
        column = np.concatenate([seen[0][:1, s]] + [w[1:, s] for w in seen])
        np.testing.assert_array_equal(column, np.arange(s * spacing, s * spacing + stream_len))
    predicted = sum(w[1:].size for w in seen)
    assert predicted == n_streams * (stream_len - 1)
    if cap and cap < length:
        assert n_streams * stream_len <= cap and stream_len >= 2
        assert spacing == length // n_streams  # evenly spread over the whole held-out part
    else:
        assert n_streams * stream_len > length - n_streams  # the whole part
    again = [w for w in evaluation_windows(data, batch, seq, cap)]
    assert all(np.array_equal(a, b) for a, b in zip(seen, again, strict=True))  # the same windows every time


def test_bounded_evaluation_equals_a_plain_one_over_its_streams(numpy_backend, rng):
    V, H = 9, 12
    model = CharRNN(V, H, numpy_backend, dtype="float64", seed=int(rng.integers(1 << 30)))
    data = rng.integers(0, V, size=5_000)
    batch, seq, cap = 6, 20, 1_200
    result = evaluate(model, data, batch, seq, cap)
    loss, count = result.loss, result.symbols
    n_streams, spacing, stream_len = evaluation_streams(len(data), batch, seq, cap)
    total = 0.0
    for s in range(n_streams):  # each stream whole, as one sequence from h = 0
        stream = data[s * spacing: s * spacing + stream_len]
        part, _ = model.loss(stream[:-1, None], stream[1:, None], np.zeros((1, H)))
        total += part * (len(stream) - 1)
    assert count == n_streams * (stream_len - 1) <= cap
    assert loss == pytest.approx(total / count, rel=1e-12)
    assert (result.loss_per_char, result.chars) == (loss, count)  # characters: one symbol each


def test_training_logs_lr_and_what_validation_covered(corpus_file, tmp_path):
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=30, eval_every=10, log_every=5, warmup=5, val_chars=300,
                      backend="numpy", lr=0.01)
    train(cfg, corpus_file, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    schedule = cfg.schedule()
    assert [r["lr"] for r in records] == pytest.approx([schedule(r["step"]) for r in records])
    assert records[0]["lr"] == pytest.approx(0.01) and records[-1]["lr"] < 0.0015  # step 5 ends the warm-up
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    val_len = evals[0]["val_part_symbols"]
    n_streams, _, stream_len = evaluation_streams(val_len, 4, 8, 300)
    assert all(r["val_symbols"] == n_streams * (stream_len - 1) <= 300 for r in evals)
    assert all(math.isfinite(r["val_loss"]) for r in evals)
