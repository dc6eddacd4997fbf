"""Dropout masks from a counter (rnn_gpu/dropout.py, kernels/dropout.cu):
the NumPy function against a plain scalar loop and Random123's known
answers, the kernels against NumPy bit for bit, a rank's streams against one
process, the statistics of the masks, and resuming without a generator."""
import json

import numpy as np
import pytest

from rnn_gpu import CharRNN, dropout
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main
from rnn_gpu.dropout import Dropout
from rnn_gpu.errors import UsageError

ODD_SHAPES = [(1, 1, 1), (3, 5, 7), (2, 3, 33), (5, 2, 64), (4, 7, 65), (9, 1, 130)]
M32 = 0xFFFFFFFF


def random_key(rng, p=None):
    return Dropout(float(rng.uniform(0.05, 0.95)) if p is None else p, int(rng.integers(1 << 32)),
                   int(rng.integers(1, 1 << 40)), int(rng.integers(1 << 20)))


# -- the function, against a plain loop of Python integers ---------------------
def plain_philox(key, counter):
    """Random123's philox4x32_R(10, counter, key), one counter, Python ints."""
    (k0, k1), c = key, list(counter)
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & M32, (p0 >> 32) ^ c[3] ^ k1, p0 & M32]
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c


def plain_mix(x):
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def plain_keep(drop, layer, shape):
    """Unit by unit, as the module's docstring defines it."""
    T, B, H = shape
    keep = np.zeros(shape, bool)
    for t in range(T):
        for b in range(B):
            w0, w1, _, _ = plain_philox((drop.seed, layer), (t, drop.first_stream + b, drop.step & M32,
                                                              drop.step >> 32))
            for u in range(H):
                h = plain_mix((u // 2) ^ w0) ^ w1
                keep[t, b, u] = ((h >> 16) if u % 2 else (h & 0xFFFF)) >= round(drop.p * 65536)
    return keep


def test_philox_gives_random123s_known_answers():
    """Random123's kat_vectors for philox4x32_10."""
    cases = [((0, 0), (0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((M32, M32), (M32,) * 4, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0xA4093822, 0x299F31D0), (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for key, counter, expected in cases:
        assert tuple(int(w) for w in dropout.philox4x32(key, counter)) == expected
        assert tuple(plain_philox(key, counter)) == expected


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_numpy_masks_are_the_plain_loop(rng, shape):
    drop = random_key(rng)
    for layer in (1, int(rng.integers(2, 9))):
        assert np.array_equal(dropout.keep(drop, layer, shape), plain_keep(drop, layer, shape))
    scaled = dropout.mask(drop, 1, shape, np.float32)
    assert set(np.unique(scaled)) <= {np.float32(0), drop.scale(np.float32)}


def test_the_key_is_checked():
    for bad in (dict(p=1.0), dict(p=-0.1), dict(p=float("nan")), dict(seed=1 << 32), dict(step=-1),
                dict(first_stream=0.5), dict(seed=True)):
        with pytest.raises(UsageError, match=next(iter(bad))):
            Dropout(**{"p": 0.5, "seed": 1, "step": 1, **bad})
    assert Dropout(0.3, 0, 1).threshold == round(0.3 * 65536)
    assert Dropout(0.3, 0, 1).scale(np.float64) == 65536 / (65536 - round(0.3 * 65536))


# -- the kernels, bit for bit -----------------------------------------------------
KERNEL_BACKENDS = ["opencl", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("backend", KERNEL_BACKENDS, indirect=True)
@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_kernels_give_the_numpy_hashes_and_masks(backend, rng, shape):
    drop, layer = random_key(rng), int(rng.integers(1, 5))
    runner = backend.kernels
    assert np.array_equal(backend.to_host(runner.dropout_hashes(drop, layer, shape)),
                          dropout.pair_hashes(drop, layer, shape))
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=shape).astype(dtype)
        expected = x * dropout.mask(drop, layer, shape, dtype)
        y = backend.to_host(runner.dropout(backend.asarray(x), drop, layer))
        assert y.dtype == dtype and np.array_equal(y, expected)
        in_place = backend.asarray(x.copy())
        runner.dropout(in_place, drop, layer, out=in_place)
        assert np.array_equal(backend.to_host(in_place), expected)


@pytest.mark.parametrize("keep", [True, False])
def test_backend_ops_apply_the_reference_mask_forward_and_backward(backend, rng, monkeypatch, keep):
    """Kept or recomputed for the backward pass, the same mask both ways."""
    monkeypatch.setattr(type(backend), "keep_dropout_masks", keep)
    shape, drop, layer = (6, 5, 37), random_key(rng), 2
    reference = dropout.mask(drop, layer, shape, np.float64)
    x, G = rng.normal(size=shape), rng.normal(size=shape)
    y, saved = backend.dropout(backend.asarray(x), drop, layer)
    assert (saved is not None) == keep
    assert np.array_equal(backend.to_host(y), x * reference)
    dG = backend.asarray(G.copy())  # NumPy: the same array otherwise
    backend.dropout_grad_(dG, drop, layer, saved)
    assert np.array_equal(backend.to_host(dG), G * reference)


def test_a_model_applies_the_same_masks_on_every_backend(backend, numpy_backend, rng):
    V, H, T, B, L = 7, 10, 6, 4, 3
    params = CharRNN(V, H, numpy_backend, dtype="float64", seed=int(rng.integers(1 << 30)), layers=L).params
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    h0 = rng.uniform(-0.5, 0.5, size=(L, B, H))
    drop = random_key(rng, p=0.4)
    losses = {}
    for name, be in (("here", backend), ("numpy", numpy_backend)):
        model = CharRNN(V, H, be, dtype="float64", params=params)
        losses[name] = model.loss_and_grads(inputs, targets, h0, drop)[0]
        assert model.loss(inputs, targets, h0, drop)[0] == pytest.approx(losses[name], rel=1e-12)
        assert model.loss(inputs, targets, h0, Dropout(0.0, 1, 1))[0] == model.loss(inputs, targets, h0)[0]
    assert losses["here"] == pytest.approx(losses["numpy"], rel=1e-12)
    other = CharRNN(V, H, numpy_backend, dtype="float64", params=params)
    assert other.loss(inputs, targets, h0, random_key(rng, p=0.4))[0] != pytest.approx(losses["numpy"], rel=1e-6)
    with pytest.raises(UsageError, match="dropout"):
        other.loss(inputs, targets, h0, [np.ones((T, B, H))])


# -- ranks: each its own streams, and only those ---------------------------------
def test_a_ranks_streams_are_one_process_masks_and_nothing_else_is_computed(rng, monkeypatch):
    T, B, H = 7, 12, 21
    drop = random_key(rng)
    whole = Dropout(drop.p, drop.seed, drop.step, 0)
    one_process = dropout.keep(whole, 2, (T, B, H))
    seen = []
    philox = dropout.philox4x32

    def recording(key, counter, *args):
        seen.append(np.unique(np.broadcast_to(counter[1], np.broadcast_shapes(*map(np.shape, counter)))))
        return philox(key, counter, *args)

    monkeypatch.setattr(dropout, "philox4x32", recording)
    for ranks in (2, 3, 4):
        for r in range(ranks):
            s0, s1 = r * B // ranks, (r + 1) * B // ranks
            seen.clear()
            mine = dropout.keep(Dropout(drop.p, drop.seed, drop.step, s0), 2, (T, s1 - s0, H))
            assert np.array_equal(mine, one_process[:, s0:s1])
            assert set(np.concatenate(seen).tolist()) == set(range(s0, s1))  # no other stream's counter


# -- statistics over 10^7 draws -------------------------------------------------
def correlation(a, b) -> tuple[float, int]:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1]), a.size


@pytest.mark.slow  # statistics over 10^7 draws a mask
def test_masks_keep_1_minus_p_with_no_correlation_between_neighbours(rng):
    shape = (50, 100, 2001)  # 10,005,000 draws a mask
    drop = random_key(rng)
    keep = dropout.keep(drop, 1, shape)
    n = keep.size
    assert abs(keep.mean() - (1 - drop.p)) < 4 * np.sqrt(drop.p * (1 - drop.p) / n)

    def other(**change):
        fields = {"p": drop.p, "seed": drop.seed, "step": drop.step, "first_stream": drop.first_stream, **change}
        return dropout.keep(Dropout(**fields), 1, shape)

    pairs = {
        "units in a pair (2j, 2j+1)": (keep[..., 0:-1:2], keep[..., 1::2]),
        "units across pairs (2j+1, 2j+2)": (keep[..., 1:-1:2], keep[..., 2::2]),
        "time steps": (keep[:-1], keep[1:]),
        "streams": (keep[:, :-1], keep[:, 1:]),
        "layers": (keep, dropout.keep(drop, 2, shape)),
        "steps": (keep, other(step=drop.step + 1)),
        "seeds": (keep, other(seed=(drop.seed + 1) % (1 << 32))),
    }
    for what, (a, b) in pairs.items():
        r, n = correlation(a, b)
        assert abs(r) < 4 / np.sqrt(n), f"{what}: r = {r:.2e} over {n} pairs"


# -- training: resumed runs need no generator --------------------------------------
RUN = ["--hidden", "16", "--batch", "4", "--seq", "8", "--quiet", "--eval-every", "10", "--layers", "2",
       "--lr-schedule", "constant"]


def test_a_checkpoint_with_an_old_generator_state_resumes_as_one_without(corpus_file, tmp_path):
    """Checkpoints of versions that drew masks from a generator hold its
    state; it is ignored, and the run continues with the counter's masks,
    as a checkpoint of this version does, bit for bit."""
    common = [str(corpus_file), *RUN, "--backend", "numpy", "--dropout", "0.3"]
    for name in ("new", "old"):
        assert main(["train", *common, "--out", str(tmp_path / name), "--steps", "10"]) == 0
    path = tmp_path / "old" / "checkpoint.npz"
    with np.load(path) as z:
        arrays = dict(z)
    state = np.random.default_rng([0, 1]).bit_generator.state
    np.savez(path, **arrays, rng_state=np.array(json.dumps(state)))
    assert "rng_state" in np.load(path).files
    for name in ("new", "old"):
        assert main(["train", *common, "--out", str(tmp_path / name), "--steps", "20", "--resume"]) == 0
    new, old = load_checkpoint(tmp_path / "new"), load_checkpoint(tmp_path / "old")
    assert new.step == old.step == 20
    for k in new.params:
        assert np.array_equal(new.params[k], old.params[k]), k
    assert "rng_state" not in np.load(tmp_path / "new" / "checkpoint.npz").files


def test_a_dropout_run_is_reproducible_and_differs_from_one_without(corpus_file, tmp_path):
    common = [str(corpus_file), *RUN, "--backend", "numpy", "--steps", "5", "--seed", "1"]
    runs = {"none": [], "a": ["--dropout", "0.3"], "b": ["--dropout", "0.3"]}
    params = {}
    for name, extra in runs.items():
        assert main(["train", *common, *extra, "--out", str(tmp_path / name)]) == 0
        params[name] = load_checkpoint(tmp_path / name).params["W2"]
    assert np.array_equal(params["a"], params["b"]) and not np.array_equal(params["a"], params["none"])


@pytest.mark.parametrize("backend", KERNEL_BACKENDS, indirect=True)
def test_a_dropout_run_on_the_kernels_is_the_numpy_run(backend, corpus_file, tmp_path):
    """The same masks on every backend: 20 float64 steps agree to rounding
    (different masks would differ by far more than 1e-9)."""
    common = [str(corpus_file), *RUN, "--steps", "20", "--dropout", "0.3", "--dtype", "float64"]
    runs = {}
    for name in ("numpy", backend.name):
        assert main(["train", *common, "--backend", name, "--out", str(tmp_path / name)]) == 0
        runs[name] = load_checkpoint(tmp_path / name).params
    for k, v in runs["numpy"].items():
        np.testing.assert_allclose(runs[backend.name][k], v, rtol=0, atol=1e-9, err_msg=k)
