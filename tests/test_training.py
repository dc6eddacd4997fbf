import json

import numpy as np
import pytest

from rnn_gpu import CharRNN
from rnn_gpu.backends import NumpyBackend
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.layout import FlatLayout
from rnn_gpu.optim import Adagrad, Adam, clip_elementwise, clip_global_norm
from rnn_gpu.training import TrainConfig, train

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


def flat_params(backend, shapes, values):
    """A layout, its flat buffer and the named views, filled from `values`."""
    layout = FlatLayout(shapes)
    flat = backend.xp.zeros(layout.size)
    views = layout.views(flat)
    for k, v in values.items():
        views[k][...] = backend.asarray(v)
    return layout, flat, views


def test_adagrad_step_matches_formula(backend, rng):
    p = {"W": rng.normal(size=(3, 4)), "U": rng.normal(size=(4, 5))}  # U is stored transposed
    layout, flat, views = flat_params(backend, {k: v.shape for k, v in p.items()}, p)
    opt = Adagrad(layout, lr=0.1, backend=backend, dtype=np.float64)
    mem, expected = {k: np.zeros_like(v) for k, v in p.items()}, {k: v.copy() for k, v in p.items()}
    for _ in range(3):
        g = {k: rng.normal(scale=4, size=v.shape) for k, v in p.items()}
        _, gflat, _ = flat_params(backend, layout.shapes, g)
        opt.step(flat, gflat, clip=5.0)
        for k in p:
            gk = np.clip(g[k], -5, 5)
            mem[k] += gk * gk
            expected[k] -= 0.1 * gk / np.sqrt(mem[k] + 1e-8)
    for k in p:
        np.testing.assert_allclose(backend.to_host(views[k]), expected[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(backend.to_host(opt.state_dict()[f"mem.{k}"]), mem[k], rtol=1e-12, atol=1e-14)


def test_adam_step_matches_formula(backend, rng):
    p = rng.normal(size=(5, 2))
    layout, flat, params = flat_params(backend, {"b": (5, 2)}, {"b": p})
    opt = Adam(layout, lr=0.01, backend=backend, dtype=np.float64)
    m = v = np.zeros((5, 2))
    expected = p.copy()
    for t in range(1, 4):
        g = rng.normal(scale=3, size=(5, 2))
        _, gflat, _ = flat_params(backend, layout.shapes, {"b": g})
        opt.step(flat, gflat, clip=2.0 if t == 2 else None)
        g = np.clip(g, -2, 2) if t == 2 else g
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        # Kingma & Ba's efficient form: bias corrections folded into the step size
        expected -= 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(backend.to_host(params["b"]), expected, rtol=1e-10, atol=1e-14)


def test_clipping(rng):
    values = {"a": rng.normal(scale=10, size=50), "b": rng.normal(scale=10, size=(7, 3))}
    layout, flat, grads = flat_params(NumpyBackend(), {k: v.shape for k, v in values.items()}, values)
    clip_elementwise(flat, 5.0, np)
    for k in grads:
        np.testing.assert_array_equal(grads[k], np.clip(values[k], -5, 5))
    norm = np.sqrt(sum((np.clip(v, -5, 5) ** 2).sum() for v in values.values()))
    returned = clip_global_norm(flat, norm / 2, np)
    assert returned == pytest.approx(norm)
    assert np.sqrt(sum((v**2).sum() for v in grads.values())) == pytest.approx(norm / 2)
    assert not (flat[layout.offsets["b"] - 1] or flat[-1])  # the alignment gaps stay zero


def test_a_zero_gradient_is_left_alone_by_the_norm_clip(recwarn):
    flat = np.zeros(17, np.float32)
    assert clip_global_norm(flat, 1.0, np) == 0
    assert not flat.any() and not recwarn.list  # no division-by-zero warning, no NaN


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
