"""The regularisers and initialisations for recurrent nets (docs/math.md,
"Regularisers and initialisations"): each gradient against float64 finite
differences at 1 and 3 layers, the masks the same on every backend and for
any split of the streams, zoneout's evaluation the expectation, the
initialisations, weight decay, checkpoints and resumes, sampling and export."""
import dataclasses
import json

import numpy as np
import pytest
from helpers import numerical_gradient

import rnn_gpu
from rnn_gpu import dropout as masks_of
from rnn_gpu.backends.base import NumpyBackend
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import build_parser
from rnn_gpu.dropout import MASK_KINDS, SALTS, Dropout
from rnn_gpu.model import INITS, OUTPUT_BIASES, TextRNN, forward_settings, init_params
from rnn_gpu.optim import Adagrad, Adam
from rnn_gpu.sample import Stepper, step
from rnn_gpu.settings import declared, from_flags
from rnn_gpu.training import TrainConfig
from rnn_gpu.training.trainer import unigram_log_frequencies

V, H, T, B = 5, 4, 4, 2
# Each case: the model's keywords, the mask key's (None: no key, the evaluation's forward pass), AR and TAR.
CASES = {
    "locked": ({}, {"p": 0.3, "masks": "locked"}, 0.0, 0.0),
    "step_dropout": ({}, {"p": 0.3}, 0.0, 0.0),
    "weight_drop": ({}, {"p": 0.0, "weight_drop": 0.4}, 0.0, 0.0),
    "zoneout_masks": ({"zoneout": 0.3}, {"p": 0.0}, 0.0, 0.0),
    "zoneout_expectation": ({"zoneout": 0.3}, None, 0.0, 0.0),
    "residual": ({"residual": True}, None, 0.0, 0.0),
    "ar": ({}, {"p": 0.3}, 1.5, 0.0),
    "tar": ({}, None, 0.0, 2.0),
    "all": ({"residual": True, "zoneout": 0.25}, {"p": 0.2, "masks": "locked", "weight_drop": 0.3}, 1.0, 1.0),
}


def make_problem(backend, rng, layers, model_kw, key_kw, batch=B):
    model = TextRNN(V, H, backend, dtype="float64", seed=int(rng.integers(1 << 30)), layers=layers, **model_kw)
    for view in model.params.values():  # larger than the initialisation: tanh is not near-linear
        view[...] = backend.asarray(rng.uniform(-0.8, 0.8, size=view.shape))
    inputs, targets = rng.integers(0, V, size=(T, batch)), rng.integers(0, V, size=(T, batch))
    h0 = rng.uniform(-0.5, 0.5, size=model.state_shape(batch))
    key = None if key_kw is None else Dropout(seed=int(rng.integers(1 << 32)), step=int(rng.integers(1, 1 << 40)),
                                              **key_kw)
    return model, inputs, targets, h0, key


def check_against_finite_differences(backend, model, inputs, targets, h0, key, ar, tar):
    loss, grads, dh0, _ = model.loss_and_grads_with_h0(inputs, targets, h0, key, ar=ar, tar=tar)
    assert np.isclose(loss, model.loss(inputs, targets, h0, key, ar=ar, tar=tar)[0], rtol=1e-12)
    host = {k: backend.to_host(v).copy() for k, v in model.params.items()}
    analytic = {k: backend.to_host(g).copy() for k, g in grads.items()}
    analytic_h0 = backend.to_host(dh0).copy()

    def objective():
        for k in host:
            model.params[k][...] = backend.asarray(host[k])
        return model.loss(inputs, targets, h0, key, ar=ar, tar=tar)[0]

    for k in host:
        np.testing.assert_allclose(analytic[k], numerical_gradient(objective, host[k]), rtol=1e-5, atol=1e-8,
                                   err_msg=k)
    np.testing.assert_allclose(analytic_h0, numerical_gradient(objective, h0), rtol=1e-5, atol=1e-8, err_msg="h0")


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_finite_differences(backend, rng, case, layers):
    model_kw, key_kw, ar, tar = CASES[case]
    model, inputs, targets, h0, key = make_problem(backend, rng, layers, model_kw, key_kw)
    check_against_finite_differences(backend, model, inputs, targets, h0, key, ar, tar)


@pytest.mark.parametrize("layers", [1, 3])
def test_tied_weights_have_the_gradient_of_the_one_matrix(backend, rng, layers):
    """With V = U^T (copy_tied), tie_gradients leaves in U's place the
    loss's gradient with respect to the matrix M of U = M, V = M^T (float64
    finite differences, perturbing both) and zero in V's."""
    model, inputs, targets, h0, key = make_problem(backend, rng, layers, {}, {"p": 0.3})
    model.copy_tied()
    M = backend.to_host(model.params["U"]).copy()
    assert np.array_equal(backend.to_host(model.params["V"]), M.T)
    model.loss_and_grads_with_h0(inputs, targets, h0, key)
    untied_dV = backend.to_host(model.grads["V"]).copy()
    model.tie_gradients()

    def objective():
        model.params["U"][...] = backend.asarray(M)
        model.copy_tied()
        return model.loss(inputs, targets, h0, key)[0]

    tied = backend.to_host(model.grads["U"])
    np.testing.assert_allclose(tied, numerical_gradient(objective, M), rtol=1e-5, atol=1e-8)
    assert untied_dV.any() and not backend.to_host(model.grads["V"]).any()


@pytest.mark.parametrize("backend_name", ["numpy", "opencl"])
def test_a_tied_run_trains_u_and_keeps_v_its_transpose(corpus_file, tmp_path, backend_name):
    """Through Adam, decoupled weight decay and a global-norm clip (which
    counts the matrix once), V stays U's transpose bit for bit while U
    learns; the untied run of the same seed ends elsewhere."""
    if backend_name == "opencl":
        from rnn_gpu.kernels.opencl_runner import opencl_unavailable_reason

        if opencl_unavailable_reason():
            pytest.skip(opencl_unavailable_reason())
    run = {"hidden": 12, "batch": 4, "seq": 8, "layers": 2, "steps": 20, "backend": backend_name, "seed": 5,
           "weight_decay": 0.01, "clip_norm": 0.5}
    rnn_gpu.train(corpus_file, tmp_path / "tied", tie_weights=True, **run)
    rnn_gpu.train(corpus_file, tmp_path / "untied", **run)
    tied, untied = (load_checkpoint(tmp_path / n).params for n in ("tied", "untied"))
    start = init_params(len(rnn_gpu.load(tmp_path / "tied", "numpy")[1]), 12, 5, 2)
    assert np.array_equal(tied["V"], tied["U"].T) and not np.array_equal(untied["V"], untied["U"].T)
    assert not np.allclose(tied["U"], start["U"]) and not np.allclose(tied["U"], untied["U"])


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_backends_compute_what_the_reference_does(backend, rng, case, layers):
    """The same loss and gradients as the plain NumPy reference, from the same masks."""
    model_kw, key_kw, ar, tar = CASES[case]
    model, inputs, targets, h0, key = make_problem(backend, rng, layers, model_kw, key_kw)
    reference = TextRNN(V, H, NumpyBackend(), dtype="float64", layers=layers,
                        params={k: backend.to_host(v) for k, v in model.params.items()}, **model_kw)
    got = model.loss_and_grads_with_h0(inputs, targets, h0, key, ar=ar, tar=tar)
    want = reference.loss_and_grads_with_h0(inputs, targets, h0, key, ar=ar, tar=tar)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    for k in want[1]:
        np.testing.assert_allclose(backend.to_host(got[1][k]), want[1][k], rtol=1e-10, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(backend.to_host(got[2]), want[2], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(backend.to_host(got[3]), want[3], rtol=1e-12, atol=1e-14)


# -- the masks ------------------------------------------------------------------
def some_key(rng, **kw):
    return Dropout(0.35, int(rng.integers(1 << 32)), int(rng.integers(1, 1 << 40)), int(rng.integers(100)), **kw)


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 4, 16), (6, 1, 1)])
def test_every_mask_kind_is_the_same_bits_on_every_backend(backend, rng, shape):
    reference = NumpyBackend()
    drop = some_key(rng, weight_drop=0.45)
    T_, B_, H_ = shape
    for layer in (1, 2, 7):
        for kind in SALTS:
            made = backend.dropout_mask(drop, masks_of.salted(kind, layer), shape, np.float32)
            assert np.array_equal(backend.to_host(made), masks_of.mask(drop, masks_of.salted(kind, layer), shape,
                                                                       np.float32)), (kind, layer)
        assert np.array_equal(backend.to_host(backend.weight_drop_mask(drop, layer, H_, np.float64)),
                              masks_of.weight_mask(drop, layer, H_, np.float64))
        assert np.array_equal(backend.to_host(backend.zoneout_mask(drop, 0.2, layer, shape, np.float64)),
                              reference.zoneout_mask(drop, 0.2, layer, shape, np.float64))
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        locked = dataclasses.replace(drop, masks="locked")
        y, saved = backend.dropout(backend.asarray(x), locked, layer)
        assert np.array_equal(backend.to_host(y), x * masks_of.locked_mask(locked, layer, B_, H_, np.float32))


def test_masks_split_over_streams_are_the_whole_batchs(rng):
    """Two processes holding streams [0, 3) and [3, 6) draw the whole batch's masks."""
    drop = some_key(rng, weight_drop=0.3)
    first, second = (dataclasses.replace(drop, first_stream=drop.first_stream + s) for s in (0, 3))
    whole = masks_of.locked_mask(first, 2, 6, 9, np.float64)
    assert np.array_equal(np.concatenate([masks_of.locked_mask(first, 2, 3, 9, np.float64),
                                          masks_of.locked_mask(second, 2, 3, 9, np.float64)], axis=1), whole)
    whole = masks_of.zoneout_mask(first, 0.4, 1, (5, 6, 9), np.float64)
    assert np.array_equal(np.concatenate([masks_of.zoneout_mask(first, 0.4, 1, (5, 3, 9), np.float64),
                                          masks_of.zoneout_mask(second, 0.4, 1, (5, 3, 9), np.float64)], axis=1),
                          whole)
    # Weight drop: every process the same masks, whatever its streams.
    assert np.array_equal(masks_of.weight_mask(first, 3, 9, np.float64), masks_of.weight_mask(second, 3, 9, np.float64))


def test_a_batch_split_in_two_has_the_whole_batchs_gradient(backend, rng):
    """Every setting on: the mean of two halves' gradients (each half's masks
    keyed by its first stream) is the whole batch's, as an all-reduce of two ranks makes it."""
    model_kw, key_kw, ar, tar = CASES["all"]
    model, inputs, targets, h0, key = make_problem(backend, rng, 3, model_kw, key_kw, batch=4)
    whole = {k: backend.to_host(g).copy() for k, g in model.loss_and_grads(inputs, targets, h0, key, ar=ar,
                                                                          tar=tar)[1].items()}
    halves = []
    for s in (slice(0, 2), slice(2, 4)):
        part = dataclasses.replace(key, first_stream=key.first_stream + s.start)
        grads = model.loss_and_grads(inputs[:, s], targets[:, s], h0[:, s], part, ar=ar, tar=tar)[1]
        halves.append({k: backend.to_host(g).copy() for k, g in grads.items()})
    for k in whole:
        np.testing.assert_allclose((halves[0][k] + halves[1][k]) / 2, whole[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_locked_masks_are_constant_over_time(backend, rng):
    drop = some_key(rng, masks="locked")
    x = backend.asarray(np.ones((9, 5, 33)))
    y = backend.to_host(backend.dropout(x, drop, 2)[0])
    assert np.array_equal(y, np.broadcast_to(y[:1], y.shape)) and 0 < (y == 0).mean() < 1
    step_masks = backend.to_host(backend.dropout(x, dataclasses.replace(drop, masks="step"), 2)[0])
    assert not np.array_equal(step_masks[0], step_masks[1])  # today's: new at every step
    later = backend.to_host(backend.dropout(x, dataclasses.replace(drop, step=drop.step + 1), 2)[0])
    assert not np.array_equal(later, y)  # a new window, a new mask


def test_mask_kinds_are_independent(rng):
    """The salts: masks of different kinds (same seed, step, layer) agree no
    more than independent draws do."""
    drop = some_key(rng)
    shape = (64, 8, 64)
    keeps = {kind: masks_of.keep(drop, masks_of.salted(kind, 1), shape) for kind in SALTS}
    kinds = list(keeps)
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            agree = (keeps[a] == keeps[b]).mean()
            expected = (1 - drop.rate) ** 2 + drop.rate ** 2
            assert abs(agree - expected) < 0.01, (a, b, agree, expected)


def test_zoneout_masks_keep_with_their_probability(rng):
    drop = some_key(rng)
    z = masks_of.zoneout_mask(drop, 0.3, 1, (50, 20, 100), np.float64)
    assert set(np.unique(z)) == {0.0, 1.0} and abs(z.mean() - 0.3) < 0.01


def test_zoneout_evaluation_is_the_expectation(backend, rng):
    """Without masks: h_t = p' h_(t-1) + (1 - p') tanh(...), p' the rate the masks use."""
    model, inputs, targets, h0, _ = make_problem(backend, rng, 2, {"zoneout": 0.3}, None)
    p = {k: backend.to_host(v) for k, v in model.params.items()}
    rate = masks_of.used_rate(0.3)
    assert model.zoneout_rate == rate and abs(rate - 0.3) < 2**-16
    states, x, loss = [], None, 0.0
    for k, (U, W, b) in enumerate([("U", "W", "b"), ("U2", "W2", "b2")]):
        h, out = h0[k], []
        for t in range(T):
            a = (p[U].T[inputs[t]] if k == 0 else x[t] @ p[U].T) + h @ p[W].T + p[b]
            h = rate * h + (1 - rate) * np.tanh(a)
            out.append(h)
        x = np.stack(out)
        states.append(h)
    logits = x @ p["V"].T + p["c"]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp, targets[..., None], -1).mean()
    got, h_last = model.loss(inputs, targets, h0)
    assert got == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_host(h_last), np.stack(states), rtol=1e-12)


def test_the_kernels_run_unless_zoneout_is_on(opencl, rng, monkeypatch):
    """Zoneout runs the reference loop on a kernel backend; weight drop,
    locked dropout and residual connections keep the fused kernels."""
    backend = rnn_gpu.get_backend("opencl")
    calls = []
    for name in ("forward", "backward"):
        original = getattr(backend.kernels, name)
        monkeypatch.setattr(backend.kernels, name,
                            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    for model_kw, key_kw, kernels in (({"zoneout": 0.2}, {"p": 0.2}, False),
                                      ({"residual": True}, {"p": 0.2, "masks": "locked", "weight_drop": 0.3}, True)):
        calls.clear()
        model, inputs, targets, h0, key = make_problem(backend, rng, 2, model_kw, key_kw)
        model.loss_and_grads(inputs, targets, h0, key)
        assert (calls.count("forward") == 2 and calls.count("backward") == 2) if kernels else not calls, calls


def test_weight_drop_masks_w_and_scales_it(backend, rng):
    drop = some_key(rng, weight_drop=0.4)
    m = backend.to_host(backend.weight_drop_mask(drop, 1, 64, np.float64))
    assert m.shape == (64, 64) and abs((m == 0).mean() - 0.4) < 0.03
    kept = np.unique(m[m != 0])
    assert len(kept) == 1 and kept[0] == pytest.approx(1 / (1 - masks_of.used_rate(0.4)), rel=1e-12)
    assert not np.array_equal(m, backend.to_host(backend.weight_drop_mask(drop, 2, 64, np.float64)))  # per layer


# -- initialisations ---------------------------------------------------------------
def test_initialisations_of_w_leave_the_other_weights_as_uniform_draws_them():
    uniform = init_params(11, 8, seed=5, layers=3)
    for init, scale in (("orthogonal", 1.0), ("orthogonal", 0.5), ("identity", 1.0), ("identity", 0.9),
                        ("uniform", 2.0)):
        params = init_params(11, 8, seed=5, layers=3, init=init, scale=scale)
        for name in params:
            if name.startswith("W"):
                W = params[name]
                if init == "orthogonal":
                    np.testing.assert_allclose(W @ W.T, scale**2 * np.eye(8), atol=1e-12)
                elif init == "identity":
                    assert np.array_equal(W, scale * np.eye(8))
                else:
                    assert np.array_equal(W, scale * uniform[name])
            else:
                assert np.array_equal(params[name], uniform[name]), name
    a, b = (init_params(11, 8, seed=5, layers=2, init="orthogonal")[w] for w in ("W", "W2"))
    assert not np.allclose(a, b)  # each layer its own
    assert np.array_equal(a, init_params(11, 8, seed=5, layers=2, init="orthogonal")["W"])  # from the seed alone


def test_unigram_bias_counts_in_chunks(tmp_path):
    ids = np.random.default_rng(1).integers(0, 6, size=10_000).astype(np.uint16)
    ids[:5] = 7  # beyond the vocabulary: not counted
    path = tmp_path / "ids.bin"
    ids.tofile(path)
    mapped = np.memmap(path, dtype=np.uint16, mode="r")
    counts = np.bincount(ids[ids < 8], minlength=8)
    expected = np.log((counts + 1.0) / (counts.sum() + 8))
    np.testing.assert_allclose(unigram_log_frequencies(ids, 8), expected, rtol=1e-15)
    np.testing.assert_allclose(unigram_log_frequencies(mapped, 8, chunk=333), expected, rtol=1e-15)
    counts = np.bincount(ids[ids < 7], minlength=7)
    np.testing.assert_allclose(unigram_log_frequencies(ids, 7, chunk=100), np.log((counts + 1.0) / (counts.sum() + 7)))


def test_a_run_starts_from_the_initialisations_it_names(corpus_file, tmp_path):
    settings = {"hidden": 8, "batch": 2, "seq": 4, "steps": 1, "lr": 1e-9, "lr_schedule": "constant",
                "val_fraction": 0, "backend": "numpy", "dtype": "float64", "seed": 2}
    rnn_gpu.train(corpus_file, tmp_path / "a", init="identity", init_scale=0.5, output_bias="unigram", **settings)
    params = load_checkpoint(tmp_path / "a").params
    np.testing.assert_allclose(params["W"], 0.5 * np.eye(8), atol=1e-6)
    text = corpus_file.read_text(encoding="utf-8")
    symbols = sorted(set(text))
    train_part = text  # val_fraction 0: the whole corpus trains
    counts = np.array([train_part.count(s) for s in symbols], dtype=np.float64)
    np.testing.assert_allclose(params["c"], np.log((counts + 1) / (counts.sum() + len(symbols))), atol=1e-6)
    with pytest.raises(rnn_gpu.UsageError, match="init_from="):
        rnn_gpu.train(corpus_file, tmp_path / "b", init="orthogonal", init_from=str(tmp_path / "a"), **settings)


# -- weight decay ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", [Adam, Adagrad])
def test_weight_decay_scales_the_parameters_and_skips_with_the_update(backend, rng, kind):
    from rnn_gpu.layout import FlatLayout

    layout = FlatLayout({"x": (1000,)})
    p0 = rng.uniform(-1, 1, layout.size)
    for dtype in ("float32", "float64"):
        opt = kind(layout, 0.5, backend, dtype)
        p = backend.asarray(p0.copy(), dtype=dtype)
        g = backend.xp.zeros(layout.size, dtype=dtype)  # no gradient: the update itself moves nothing
        skip = backend.xp.zeros(1, dtype=bool)
        opt.step(p, g, clip=5.0, ok=skip, weight_decay=0.1)
        assert np.array_equal(backend.to_host(p), p0.astype(dtype))
        opt.step(p, g, clip=5.0, ok=backend.xp.ones(1, dtype=bool), weight_decay=0.1)
        np.testing.assert_allclose(backend.to_host(p), p0.astype(dtype) * np.dtype(dtype).type(1 - 0.5 * 0.1),
                                   rtol=1e-6 if dtype == "float32" else 1e-15)


# -- settings, checkpoints and resumes --------------------------------------------------
def test_the_settings_are_declared_with_the_packages_choices():
    fields = declared(TrainConfig)
    assert fields["dropout_masks"].metadata["setting"].choices == MASK_KINDS
    assert fields["init"].metadata["setting"].choices == INITS
    assert fields["output_bias"].metadata["setting"].choices == OUTPUT_BIASES
    args = build_parser().parse_args(["train", "--out", "x", "--dropout-masks", "locked", "--weight-drop", "0.3",
                                      "--zoneout", "0.1", "--residual", "--init", "orthogonal", "--init-scale",
                                      "0.9", "--output-bias", "unigram", "--ar", "2", "--tar", "1",
                                      "--weight-decay", "0.01"])
    cfg = from_flags(TrainConfig, args)
    assert (cfg.dropout_masks, cfg.weight_drop, cfg.zoneout, cfg.residual, cfg.init, cfg.init_scale,
            cfg.output_bias, cfg.ar, cfg.tar, cfg.weight_decay) == ("locked", 0.3, 0.1, True, "orthogonal", 0.9,
                                                                    "unigram", 2.0, 1.0, 0.01)
    off = TrainConfig()
    assert (off.dropout_masks, off.weight_drop, off.zoneout, off.residual, off.init, off.init_scale,
            off.output_bias, off.ar, off.tar, off.weight_decay) == ("step", 0, 0, False, "uniform", 1, "zero", 0, 0, 0)


EVERYTHING = {"dropout": 0.2, "dropout_masks": "locked", "weight_drop": 0.3, "zoneout": 0.1, "residual": True,
              "init": "orthogonal", "init_scale": 0.9, "output_bias": "unigram", "ar": 1.0, "tar": 1.0,
              "weight_decay": 0.01, "tie_weights": True}


@pytest.mark.parametrize("backend_name,settings", [
    ("numpy", EVERYTHING),
    ("opencl", {"dropout": 0.2, "dropout_masks": "locked", "weight_drop": 0.3, "residual": True,
                "init": "identity", "ar": 2.0, "tar": 1.0, "weight_decay": 0.05, "tie_weights": True}),
])
def test_every_setting_round_trips_and_resumes_bit_for_bit(corpus_file, tmp_path, backend_name, settings):
    if backend_name == "opencl":
        from rnn_gpu.kernels.opencl_runner import opencl_unavailable_reason

        if opencl_unavailable_reason():
            pytest.skip(opencl_unavailable_reason())
    run = {"hidden": 12, "batch": 4, "seq": 8, "layers": 3, "lr_schedule": "constant", "eval_every": 10,
           "log_every": 5, "backend": backend_name, "seed": 4}
    rnn_gpu.train(corpus_file, tmp_path / "whole", steps=30, **run, **settings)
    rnn_gpu.train(corpus_file, tmp_path / "split", steps=15, **run, **settings)
    saved = load_checkpoint(tmp_path / "split").config
    assert {k: saved[k] for k in settings} == settings
    cadence = {k: run[k] for k in ("eval_every", "log_every", "backend")}  # the run's own: not in the checkpoint
    rnn_gpu.train(corpus_file, tmp_path / "split", resume=True, steps=30, **cadence)  # the settings: the checkpoint's
    whole, split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    assert whole.step == split.step == 30 and {k: split.config[k] for k in settings} == settings
    for k in whole.params:
        assert np.array_equal(whole.params[k], split.params[k]), k
    for k in whole.optimizer_state:
        assert np.array_equal(whole.optimizer_state[k], split.optimizer_state[k]), k
    assert np.array_equal(whole.h, split.h)
    records = [[json.loads(line) for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
               for n in ("whole", "split")]
    assert [(r["step"], r["train_loss"]) for r in records[0]] == [(r["step"], r["train_loss"]) for r in records[1]]
    assert [r.get("val_loss") for r in records[0] if r["step"] % 10 == 0] == \
        [r.get("val_loss") for r in records[1] if r["step"] % 10 == 0]


def test_a_checkpoints_forward_settings_make_the_model_it_trained(corpus_file, tmp_path):
    rnn_gpu.train(corpus_file, tmp_path, hidden=8, batch=2, seq=4, steps=3, layers=2, backend="numpy",
                  residual=True, zoneout=0.2)
    config = load_checkpoint(tmp_path).config
    assert forward_settings(config) == {"residual": True, "zoneout": 0.2}
    assert forward_settings({}) == {"residual": False, "zoneout": 0.0}  # an older checkpoint's: off


# -- sampling and export ------------------------------------------------------------------
@pytest.mark.parametrize("model_kw", [{"residual": True}, {"zoneout": 0.3}, {"residual": True, "zoneout": 0.3}, {}])
def test_sampling_steps_as_the_model_evaluates(rng, model_kw):
    """Stepper follows residual connections and zoneout's expectation: bit
    for bit the plain `step`, and the logits of the batched forward pass."""
    backend = rnn_gpu.get_backend("numpy")
    model = TextRNN(V, H, backend, dtype="float64", seed=3, layers=3, **model_kw)
    for view in model.params.values():
        view[...] = rng.uniform(-0.8, 0.8, size=view.shape)
    symbols = rng.integers(0, V, size=(T, 3))
    stepper, h = Stepper(model, 3), np.zeros((3, 3, H))
    logits = []
    for t in range(T):
        stepper(symbols[t])
        top = step(model, symbols[t], h)
        assert np.array_equal(stepper.h, h)
        logits.append(stepper.logits().copy())
        np.testing.assert_array_equal(logits[-1], top @ model.params["V"].T + model.params["c"])
    _, top, _, _ = model._forward_layers(symbols, np.zeros((3, 3, H)), None)
    np.testing.assert_allclose(np.stack(logits), backend.to_host(model._logits(top)).reshape(T, 3, V), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("settings,named", [({"residual": True}, "residual=True"), ({"zoneout": 0.2}, "zoneout=0.2"),
                                            ({"weight_drop": 0.2, "dropout_masks": "locked", "dropout": 0.1}, None)])
def test_export_refuses_a_forward_pass_no_standard_rnn_has(trained_small_run, tmp_path, settings, named):
    from rnn_gpu.export import export
    from rnn_gpu.export.mapping import check_standard

    ckpt = load_checkpoint(trained_small_run)
    ckpt.config.update(settings)
    if named is None:
        check_standard(ckpt)
        return
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    for fmt in ("torch", "onnx"):
        with pytest.raises(rnn_gpu.UsageError, match=named) as caught:
            export(ckpt, fmt, tmp_path / f"m.{fmt}")
        assert "safetensors" in str(caught.value)
    pytest.importorskip("safetensors")
    export(ckpt, "safetensors", tmp_path / "m.safetensors")  # the parameters by name, the configuration kept


def test_a_loaded_model_keeps_the_settings_of_its_forward_pass(tmp_path):
    """rnn_gpu.load (and so rnn-gpu sample) builds the model the run trained: residual and zoneout kept."""
    import rnn_gpu

    (tmp_path / "c.txt").write_text("abc abd abe " * 300, encoding="utf-8")
    rnn_gpu.train(tmp_path / "c.txt", tmp_path / "run", steps=3, hidden=8, layers=2, batch=2, seq=8, residual=True,
                  zoneout=0.25, backend="numpy")
    model, vocab = rnn_gpu.load(tmp_path / "run")
    assert model.residual is True and model.zoneout == pytest.approx(0.25, abs=2**-16)
    assert isinstance(model.sample(10, seed=1), str)
