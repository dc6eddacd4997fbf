"""Stacked layers and dropout against independent references: float64
central finite differences, a plain per-step, per-layer loop, and the
one-layer model as it was before layers existed."""
import numpy as np
import pytest
from helpers import numerical_gradient

from rnn_gpu import CharRNN
from rnn_gpu.backends import NumpyBackend
from rnn_gpu.dropout import Dropout, mask
from rnn_gpu.layout import FlatLayout, layer_names, layers_in, param_shapes


def random_dropout(rng, p):
    """A fresh dropout key: masks the model never saw before."""
    return Dropout(p, int(rng.integers(1 << 32)), int(rng.integers(1, 1 << 40)), int(rng.integers(1000)))


def masks_of(drop, layers, shape):
    """The masks a dropout key names, made here by the NumPy reference, for the plain loop."""
    return [mask(drop, k, shape, np.float64) for k in range(1, layers + 1)]


def random_model(backend, rng, V, H, layers, dtype="float64"):
    model = CharRNN(V, H, backend, dtype=dtype, seed=int(rng.integers(1 << 30)), layers=layers)
    for _k, view in model.params.items():  # larger than the initialisation, so tanh is not near-linear
        view[...] = backend.asarray(rng.uniform(-0.8, 0.8, size=view.shape))
    return model


@pytest.mark.parametrize("layers,dropout", [(2, 0.0), (2, 0.4), (3, 0.0), (3, 0.3)])
def test_stacked_gradients_match_finite_differences(backend, rng, layers, dropout):
    V, H, T, B = 5, 4, 3, 2
    model = random_model(backend, rng, V, H, layers)
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    h0 = rng.uniform(-0.5, 0.5, size=(layers, B, H))
    drop = None if dropout == 0 else random_dropout(rng, dropout)
    loss, grads, dh0, _ = model.loss_and_grads_with_h0(inputs, targets, h0, drop)
    analytic = {k: backend.to_host(g).copy() for k, g in grads.items()}
    dh0 = backend.to_host(dh0).copy()
    assert loss == pytest.approx(model.loss(inputs, targets, h0, drop)[0], rel=1e-12)
    host = {k: backend.to_host(v).copy() for k, v in model.params.items()}

    def loss_now():
        for k, view in model.params.items():
            view[...] = backend.asarray(host[k])
        return model.loss(inputs, targets, h0, drop)[0]

    assert set(analytic) == set(param_shapes(V, H, layers))
    for k in analytic:
        np.testing.assert_allclose(analytic[k], numerical_gradient(loss_now, host[k]), rtol=1e-5, atol=1e-8,
                                   err_msg=k)
    np.testing.assert_allclose(dh0, numerical_gradient(loss_now, h0), rtol=1e-5, atol=1e-8, err_msg="h0")


def reference_stacked_loop(params, layers, inputs, targets, h0, masks):
    """Per time step, per layer, per stream, the formulas as written:
    h1_t = tanh(U x_t + W h1_{t-1} + b), hk_t = tanh(Uk m h(k-1)_t + Wk hk_{t-1} + bk),
    o_t = V m hL_t + c. Forward only: (mean loss, last states)."""
    T, B = inputs.shape
    h = h0.copy()
    total = 0.0
    for t in range(T):
        for s in range(B):
            below = None
            for k in range(1, layers + 1):
                U, W, b = (params[n] for n in layer_names(k))
                if k == 1:
                    x = np.zeros(U.shape[1])
                    x[inputs[t, s]] = 1
                else:
                    x = below * (masks[k - 2][t, s] if masks else 1)
                h[k - 1, s] = np.tanh(U @ x + W @ h[k - 1, s] + b)
                below = h[k - 1, s]
            o = params["V"] @ (below * (masks[-1][t, s] if masks else 1)) + params["c"]
            logp = o - o.max() - np.log(np.exp(o - o.max()).sum())
            total -= logp[targets[t, s]]
    return total / (T * B), h


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_two_layers_match_a_plain_loop(backend, rng, dropout):
    V, H, T, B, L = 7, 6, 5, 3, 2
    model = random_model(backend, rng, V, H, L)
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    h0 = rng.uniform(-0.5, 0.5, size=(L, B, H))
    drop = None if dropout == 0 else random_dropout(rng, dropout)
    loss, h_last = model.loss(inputs, targets, h0, drop)
    host = {k: backend.to_host(v) for k, v in model.params.items()}
    ref_loss, ref_h = reference_stacked_loop(host, L, inputs, targets, h0, drop and masks_of(drop, L, (T, B, H)))
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_host(h_last), ref_h, rtol=1e-12, atol=1e-14)
    loss2, _, h2 = model.loss_and_grads(inputs, targets, h0, drop)
    assert loss2 == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_host(h2), ref_h, rtol=1e-12, atol=1e-14)


# -- the one-layer model as it was before layers, flat buffers and dropout ----
def legacy_init(V, H, seed):
    rng = np.random.default_rng(seed)

    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)

    return {"U": uniform((H, V), V), "W": uniform((H, H), H), "V": uniform((V, H), H), "b": np.zeros(H),
            "c": np.zeros(V)}


def legacy_loss_and_grads(be, params, inputs, targets, h0):
    xp = be.xp
    U, W, V, b, c = (params[k] for k in ("U", "W", "V", "b", "c"))
    H = W.shape[0]
    inputs, targets = be.asarray(inputs, dtype=np.int64), be.asarray(targets, dtype=np.int64).reshape(-1)
    P = xp.take(xp.ascontiguousarray(U.T), inputs, axis=0)
    P += b
    Hs = be.recurrence_forward(P, W, h0)
    B = Hs.shape[1]
    Hf = Hs.reshape(-1, H)
    dO = Hf @ V.T
    dO += c
    loss = be.softmax_cross_entropy_(dO, targets)
    grads = {"V": dO.T @ Hf, "c": dO.sum(axis=0)}
    G = (dO @ V).reshape(Hs.shape)
    dA, dh0 = be.recurrence_backward(G, Hs, h0, W)
    dAf = dA.reshape(-1, H)
    dW = dA[0].T @ h0
    dW += dAf[B:].T @ Hf[:-B]
    grads["W"] = dW
    grads["b"] = dAf.sum(axis=0)
    onehot = xp.zeros((U.shape[1], inputs.size), dtype=dAf.dtype)
    onehot[inputs.reshape(-1), xp.arange(inputs.size)] = 1
    grads["U"] = (onehot @ dAf).T
    return float(loss), grads, dh0, Hs[-1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_layer_is_bit_identical_to_the_model_before_layers(backend, rng, dtype):
    V, H, T, B = 11, 24, 9, 5
    seed = int(rng.integers(1 << 30))
    model = CharRNN(V, H, backend, dtype=dtype, seed=seed)
    old = legacy_init(V, H, seed)
    for k in old:
        assert np.array_equal(backend.to_host(model.params[k]), old[k].astype(dtype)), k
    old = {k: backend.asarray(v, dtype=dtype) for k, v in old.items()}
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    h0 = backend.asarray(rng.uniform(-0.5, 0.5, size=(B, H)), dtype=dtype)
    loss, grads, dh0, h_last = model.loss_and_grads_with_h0(inputs, targets, h0)
    ref_loss, ref_grads, ref_dh0, ref_h = legacy_loss_and_grads(backend, old, inputs, targets, h0)
    assert loss == ref_loss
    assert h_last.shape == (B, H) and dh0.shape == (B, H)
    assert np.array_equal(backend.to_host(h_last), backend.to_host(ref_h))
    assert np.array_equal(backend.to_host(dh0), backend.to_host(ref_dh0))
    for k in ref_grads:
        assert np.array_equal(backend.to_host(grads[k]), backend.to_host(ref_grads[k])), k


def test_parameters_and_gradients_are_views_of_two_flat_buffers(rng):
    model = CharRNN(9, 8, NumpyBackend(), dtype="float64", seed=1, layers=3)
    assert list(model.params) == ["U", "W", "b", "U2", "W2", "b2", "U3", "W3", "b3", "V", "c"]
    for name, view in model.params.items():
        assert np.shares_memory(view, model.flat), name
        assert np.shares_memory(model.grads[name], model.grad_flat), name
        assert view.ctypes.data % 256 == model.flat.ctypes.data % 256  # every view starts aligned
    model.flat[:] = 0
    assert not any(v.any() for v in model.params.values())
    T, B = 4, 3
    model.flat[:] = rng.uniform(-0.3, 0.3, size=model.flat.size)
    _, grads, _ = model.loss_and_grads(rng.integers(0, 9, (T, B)), rng.integers(0, 9, (T, B)), model.zero_state(B))
    assert grads is model.grads and np.abs(model.grad_flat).sum() > 0
    total = sum(np.abs(g).sum() for g in grads.values())
    assert np.abs(model.grad_flat).sum() == pytest.approx(total)  # nothing outside the views


def test_a_deeper_model_keeps_the_first_layer_and_head_of_a_shallower_one():
    one, three = (CharRNN(7, 5, NumpyBackend(), dtype="float64", seed=4, layers=L) for L in (1, 3))
    for k in one.params:
        assert np.array_equal(one.params[k], three.params[k]), k
    assert not np.array_equal(three.params["W2"], three.params["W3"])
    assert layers_in(three.params) == 3 and layers_in(one.params) == 1


def test_flat_layout_round_trips_any_shapes(rng):
    shapes = {"U": (3, 5), "W": (3, 3), "b": (3,), "V": (5, 3), "c": (5,)}
    layout = FlatLayout(shapes)
    flat = np.zeros(layout.size)
    views = layout.views(flat)
    values = {k: rng.normal(size=s) for k, s in shapes.items()}
    for k, v in values.items():
        views[k][...] = v
    again = layout.views(flat.copy())
    for k, v in values.items():
        assert again[k].shape == shapes[k] and np.array_equal(again[k], v), k
    assert layout.stored(views, "U").flags.c_contiguous  # U lives transposed


def test_sampling_steps_every_layer_as_the_batched_model_does(rng):
    from rnn_gpu.sample import step

    model = random_model(NumpyBackend(), rng, 6, 5, 3)
    symbols = rng.integers(0, 6, size=12)
    h = np.zeros((3, 2, 5))  # two streams fed the same symbols
    for s in symbols:
        step(model, [s, s], h)
    _, h_last = model.loss(symbols[:, None], symbols[:, None], np.zeros((3, 1, 5)))
    np.testing.assert_allclose(h[:, 0], h_last[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h[:, 1], h_last[:, 0], rtol=1e-12, atol=1e-14)


def test_a_stacked_run_trains_checkpoints_and_samples(corpus_file, tmp_path, capsys):
    from rnn_gpu.checkpoint import load_checkpoint
    from rnn_gpu.cli import main

    out = tmp_path / "run"
    args = ["train", str(corpus_file), "--out", str(out), "--hidden", "16", "--batch", "4", "--seq", "8", "--steps",
            "30", "--layers", "3", "--dropout", "0.3", "--backend", "numpy", "--quiet", "--eval-every", "15"]
    assert main(args) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.config["layers"] == 3 and ckpt.h.shape == (3, 4, 16) and "W3" in ckpt.params
    capsys.readouterr()
    assert main(["sample", str(out), "--length", "40", "--prime", "the "]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the ") and text.endswith("\n") and len(text) == 4 + 40 + 1
