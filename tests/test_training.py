import json

import numpy as np
import pytest

from rnn_gpu import CharRNN
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.optim import Adagrad, Adam, clip_elementwise, clip_global_norm
from rnn_gpu.train import TrainConfig, train

SMALL = dict(hidden=32, batch=8, seq=16, eval_every=50, log_every=10, checkpoint_every=100)


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_loss_falls_on_a_small_corpus(backend, corpus_file, tmp_path, optimizer):
    cfg = TrainConfig(**{**SMALL, "log_every": 1}, steps=300, optimizer=optimizer, backend=backend.name)
    final = train(cfg, corpus_file, tmp_path / "run", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1] == final and final["step"] == 300
    uniform = np.log(len(set(corpus_file.read_text())))
    assert lines[0]["step"] == 1 and lines[0]["train_loss"] > 0.9 * uniform
    # 12 words over 16 symbols: a model that learned the words is far below uniform.
    assert final["val_loss"] < 0.6 * uniform
    assert all("val_loss" in line for line in lines if line["step"] % 50 == 0)


def test_same_seed_same_run(corpus_file, tmp_path):
    runs = []
    for name in ("a", "b"):
        train(TrainConfig(**SMALL, steps=30, backend="numpy", seed=7), corpus_file, tmp_path / name, progress=False)
        runs.append(load_checkpoint(tmp_path / name))
    for k in "UWVbc":
        assert np.array_equal(runs[0].params[k], runs[1].params[k])
    other = tmp_path / "c"
    train(TrainConfig(**SMALL, steps=30, backend="numpy", seed=8), corpus_file, other, progress=False)
    assert not np.array_equal(load_checkpoint(other).params["W"], runs[0].params["W"])


def test_checkpoint_holds_what_resuming_needs(corpus_file, tmp_path):
    cfg = TrainConfig(**SMALL, steps=20, backend="numpy", optimizer="adam")
    train(cfg, corpus_file, tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step == 20 and ckpt.config["optimizer"] == "adam"
    assert ckpt.h.shape == (8, 32)
    assert set(ckpt.optimizer_state) >= {f"{m}.{k}" for m in "mv" for k in "UWVbc"}


def test_time_limit_stops_training(corpus_file, tmp_path):
    final = train(TrainConfig(**SMALL, steps=None, time=0.5, backend="numpy"), corpus_file, tmp_path, progress=False)
    assert final["elapsed_s"] >= 0.5 and "val_loss" in final


def test_adagrad_step_matches_formula(backend, rng):
    p = rng.normal(size=(3, 4))
    grads = [rng.normal(scale=4, size=(3, 4)) for _ in range(3)]
    params = {"W": backend.asarray(p)}
    opt = Adagrad(params, lr=0.1, backend=backend)
    mem, expected = np.zeros_like(p), p.copy()
    for g in grads:
        opt.step(params, {"W": backend.asarray(g)}, clip=5.0)
        g = np.clip(g, -5, 5)
        mem += g * g
        expected -= 0.1 * g / np.sqrt(mem + 1e-8)
    np.testing.assert_allclose(backend.to_host(params["W"]), expected, rtol=1e-12)


def test_adam_step_matches_formula(backend, rng):
    p = rng.normal(size=(5, 2))
    params = {"b": backend.asarray(p)}
    opt = Adam(params, lr=0.01, backend=backend)
    m = v = np.zeros((5, 2))
    expected = p.copy()
    for t in range(1, 4):
        g = rng.normal(scale=3, size=(5, 2))
        opt.step(params, {"b": backend.asarray(g.T).T}, clip=2.0 if t == 2 else None)  # a strided gradient
        g = np.clip(g, -2, 2) if t == 2 else g
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        # Kingma & Ba's efficient form: bias corrections folded into the step size
        expected -= 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(backend.to_host(params["b"]), expected, rtol=1e-10)


def test_clipping(rng):
    grads = {"a": rng.normal(scale=10, size=50), "b": rng.normal(scale=10, size=7)}
    original = {k: v.copy() for k, v in grads.items()}
    clip_elementwise(grads, 5.0, np)
    for k in grads:
        np.testing.assert_array_equal(grads[k], np.clip(original[k], -5, 5))
    norm = np.sqrt(sum((v**2).sum() for v in grads.values()))
    returned = clip_global_norm(grads, norm / 2, np)
    assert returned == pytest.approx(norm)
    assert np.sqrt(sum((v**2).sum() for v in grads.values())) == pytest.approx(norm / 2)


def test_model_api_shapes(backend):
    model = CharRNN(vocab_size=11, hidden_size=6, backend=backend, dtype="float32", seed=0)
    assert {k: v.shape for k, v in model.params.items()} == {
        "U": (6, 11), "W": (6, 6), "V": (11, 6), "b": (6,), "c": (11,)}
    bound = 1 / np.sqrt(11)
    U = backend.to_host(model.params["U"])
    assert np.abs(U).max() <= bound and np.abs(U).max() > 0.8 * bound
    assert not backend.to_host(model.params["b"]).any()
    loss, grads, h = model.loss_and_grads(np.zeros((4, 3), int), np.ones((4, 3), int), np.zeros((3, 6)))
    assert isinstance(loss, float) and h.shape == (3, 6)
    assert {k: g.shape for k, g in grads.items()} == {k: v.shape for k, v in model.params.items()}


@pytest.mark.parametrize("rows", [1, 7, 65, 300, 5000])
def test_scatter_add_rows_matches_add_at(backend, rng, rows):
    index = rng.integers(0, rows, size=257)
    values = rng.normal(size=(257, 6))
    expected = np.zeros((rows, 6))
    np.add.at(expected, index, values)
    got = backend.scatter_add_rows(backend.asarray(index), backend.asarray(values), rows)
    np.testing.assert_allclose(backend.to_host(got), expected, rtol=1e-12, atol=1e-12)
