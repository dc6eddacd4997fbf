"""The batched model against independent references: central finite
differences in float64, and a plain per-time-step loop."""
import numpy as np
import pytest
from helpers import numerical_gradient

from rnn_gpu import CharRNN
from rnn_gpu.model import PARAM_NAMES


def random_problem(rng, V, H, T, B):
    inputs = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    h0 = rng.uniform(-0.5, 0.5, size=(B, H))
    return inputs, targets, h0


@pytest.mark.parametrize("V,H,T,B", [(7, 5, 4, 3), (5, 9, 1, 1), (11, 3, 6, 2)])
def test_gradients_match_finite_differences(backend, rng, V, H, T, B):
    model = CharRNN(V, H, backend, dtype="float64", seed=int(rng.integers(1 << 30)))
    # Larger weights than the initialisation, so tanh is not near-linear.
    for k in PARAM_NAMES:
        model.params[k][...] = backend.asarray(rng.uniform(-0.8, 0.8, size=model.params[k].shape))
    inputs, targets, h0 = random_problem(rng, V, H, T, B)
    loss, grads, dh0, _ = model.loss_and_grads_with_h0(inputs, targets, h0)
    assert np.isclose(loss, model.loss(inputs, targets, h0)[0], rtol=1e-12)

    host = {k: backend.to_host(v).copy() for k, v in model.params.items()}

    def loss_of_host_params():
        for k in PARAM_NAMES:
            model.params[k][...] = backend.asarray(host[k])
        return model.loss(inputs, targets, h0)[0]

    for k in PARAM_NAMES:
        numeric = numerical_gradient(loss_of_host_params, host[k])
        np.testing.assert_allclose(backend.to_host(grads[k]), numeric, rtol=1e-5, atol=1e-8, err_msg=k)
    numeric_h0 = numerical_gradient(loss_of_host_params, h0)
    np.testing.assert_allclose(backend.to_host(dh0), numeric_h0, rtol=1e-5, atol=1e-8, err_msg="h0")


def reference_loop(params, inputs, targets, h0):
    """The seed's algorithm for one stream: one-hot inputs, a Python loop
    over time steps forward and backward. Returns (mean loss, grads, h_last)."""
    U, W, V, b, c = (params[k] for k in PARAM_NAMES)
    T = len(inputs)
    hs, ps = {-1: h0}, {}
    loss = 0.0
    for t in range(T):
        x = np.zeros(U.shape[1])
        x[inputs[t]] = 1
        hs[t] = np.tanh(U @ x + W @ hs[t - 1] + b)
        o = V @ hs[t] + c
        ps[t] = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
        loss -= np.log(ps[t][targets[t]])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        do = ps[t].copy()
        do[targets[t]] -= 1
        do /= T
        grads["V"] += np.outer(do, hs[t])
        grads["c"] += do
        dh = V.T @ do + dh_next
        da = (1 - hs[t] ** 2) * dh
        grads["b"] += da
        grads["U"][:, inputs[t]] += da
        grads["W"] += np.outer(da, hs[t - 1])
        dh_next = W.T @ da
    return loss / T, grads, hs[T - 1]


def test_batch_of_one_matches_plain_loop(backend, rng):
    V, H, T = 13, 17, 9
    model = CharRNN(V, H, backend, dtype="float64", seed=int(rng.integers(1 << 30)))
    inputs, targets, h0 = random_problem(rng, V, H, T, 1)
    loss, grads, h_last = model.loss_and_grads(inputs, targets, h0)
    host = {k: backend.to_host(v) for k, v in model.params.items()}
    ref_loss, ref_grads, ref_h = reference_loop(host, inputs[:, 0], targets[:, 0], h0[0])
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_host(h_last)[0], ref_h, rtol=1e-12, atol=1e-14)
    for k in PARAM_NAMES:
        np.testing.assert_allclose(backend.to_host(grads[k]), ref_grads[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_batched_equals_sum_of_single_streams(backend, rng):
    """Streams are independent: the batch gradient is the mean of per-stream ones."""
    V, H, T, B = 6, 8, 5, 4
    model = CharRNN(V, H, backend, dtype="float64", seed=3)
    inputs, targets, h0 = random_problem(rng, V, H, T, B)
    _, grads, _ = model.loss_and_grads(inputs, targets, h0)
    batch = {k: backend.to_host(g).copy() for k, g in grads.items()}  # views: the next call overwrites them
    per_stream = [{k: backend.to_host(g).copy() for k, g in
                   model.loss_and_grads(inputs[:, [s]], targets[:, [s]], h0[[s]])[1].items()} for s in range(B)]
    for k in PARAM_NAMES:
        assert not np.array_equal(per_stream[0][k], per_stream[1][k]), k
        np.testing.assert_allclose(batch[k], np.mean([g[k] for g in per_stream], axis=0), rtol=1e-10, atol=1e-14)


def test_float32_close_to_float64(backend, rng):
    V, H, T, B = 20, 32, 16, 8
    inputs, targets, h0 = random_problem(rng, V, H, T, B)
    results = {}
    for dtype in ("float32", "float64"):
        model = CharRNN(V, H, backend, dtype=dtype, seed=5)
        loss, grads, _ = model.loss_and_grads(inputs, targets, h0)
        results[dtype] = loss, {k: backend.to_host(g) for k, g in grads.items()}
    assert results["float32"][0] == pytest.approx(results["float64"][0], rel=1e-5)
    for k in PARAM_NAMES:
        g32, g64 = results["float32"][1][k], results["float64"][1][k]
        assert g32.dtype == np.float32
        assert np.linalg.norm(g32 - g64) <= 1e-4 * np.linalg.norm(g64), k
