"""The tensor-core references: TF32 and BF16 rounding checked bit by bit
against independent definitions (float64 arithmetic on the format's grid,
PyTorch's own float32 -> bfloat16 conversion), and the recurrence's accuracy
against float64."""
import numpy as np
import pytest

from rnn_gpu.backends import NumpyBackend
from rnn_gpu.kernels.tensor_core import (
    BF16,
    TF32,
    recurrence_forward_bf16,
    recurrence_forward_tf32,
    round_mantissa,
    round_to_bf16,
    round_to_tf32,
)

SPECIAL = np.array([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0], dtype=np.float32)


def wide_range(rng, n=20_000):
    """Values over float32's whole range: normals of every scale, subnormals, the largest finites."""
    normal = rng.normal(size=n) * 10.0 ** rng.integers(-37, 38, n)
    subnormal = rng.uniform(-1, 1, n // 10) * 2.0**-126
    top = np.float32(np.finfo(np.float32).max) * rng.uniform(0.99, 1, n // 10)
    return np.concatenate([normal, subnormal, top, -top]).astype(np.float32)


def grid_reference(x, mantissa_bits, rounding):
    """Rounding in float64 on the format's grid: the spacing 2^(e - bits) for
    |x| in [2^e, 2^(e+1)), e at least float32's -126 (subnormals share that
    spacing); np.round breaks ties to even."""
    x64 = x.astype(np.float64)
    _, e = np.frexp(x64)
    ulp = np.ldexp(1.0, np.maximum(e - 1, -126) - mantissa_bits)
    steps = {"even": np.round(np.abs(x64) / ulp), "away": np.floor(np.abs(x64) / ulp + 0.5),
             "truncate": np.floor(np.abs(x64) / ulp)}[rounding]
    with np.errstate(over="ignore"):
        return (np.sign(x64) * steps * ulp).astype(np.float32)  # beyond float32's largest: infinity


@pytest.mark.parametrize("rounding", ["even", "away", "truncate"])
@pytest.mark.parametrize("mantissa_bits", [TF32.mantissa_bits, BF16.mantissa_bits, 1, 22])
def test_rounding_matches_float64_on_the_grid(rng, mantissa_bits, rounding):
    x = wide_range(rng)
    ulp_half = np.float32(2.0 ** (-mantissa_bits - 1))
    ties = (np.float32(1) + ulp_half * rng.integers(1, 2**mantissa_bits, 1000).astype(np.float32) * 2
            + ulp_half) * np.float32(2.0) ** rng.integers(-100, 100, 1000).astype(np.float32)
    x = np.concatenate([x, ties, -ties])  # exact halfway points, odd and even below
    y = round_mantissa(x, mantissa_bits, rounding)
    assert np.array_equal(y.view(np.uint32), grid_reference(x, mantissa_bits, rounding).view(np.uint32))
    assert not (y.view(np.uint32) & np.uint32((1 << (23 - mantissa_bits)) - 1)).any()
    assert np.array_equal(round_mantissa(y, mantissa_bits, rounding), y)  # format values are fixed points


def test_bf16_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = np.concatenate([wide_range(rng), SPECIAL, rng.integers(0, 2**32, 20_000, dtype=np.uint32).view(np.float32)])
    ours = round_to_bf16(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan)  # every NaN stays NaN, none appears (PyTorch drops NaN signs)
    assert np.array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))


def test_ties_and_special_values():
    bf16_ulp = np.float32(2.0**-7)  # BF16's last place at 1.0
    even, odd = np.float32(1.0), np.float32(1.0) + bf16_ulp
    assert round_to_bf16(even + bf16_ulp / 2) == even  # the tie above 1.0 goes down to the even 1.0
    assert round_to_bf16(odd + bf16_ulp / 2) == odd + bf16_ulp  # the next one up to the even 1 + 2 ulp
    assert round_to_bf16(-(even + bf16_ulp / 2)) == -even
    tf32_ulp = np.float32(2.0**-10)
    tie = np.float32(1.0) + tf32_ulp / 2
    assert round_to_tf32(tie) == np.float32(1.0) + tf32_ulp  # TF32 (cvt.rna): ties away from zero
    assert round_to_tf32(-tie) == -(np.float32(1.0) + tf32_ulp)
    assert round_to_tf32(np.nextafter(tie, np.float32(0))) == np.float32(1.0)
    # NaNs with their payload in the dropped bits: truncating their bits alone would give infinity
    signalling = np.array([0x7F800001, 0xFF800001, 0x7FC00000], dtype=np.uint32).view(np.float32)
    for fmt_round in (round_to_tf32, round_to_bf16):
        for mode in ("nearest", "truncate"):
            out = fmt_round(np.concatenate([SPECIAL, signalling]), mode)
            assert np.isinf(out[:2]).all() and (out[:2] == SPECIAL[:2]).all()
            assert np.isnan(out[[2, 3, 6, 7, 8]]).all()
            assert (out[4:6] == 0).all() and np.array_equal(np.signbit(out[4:6]), [False, True])
            assert np.signbit(out[7])  # a NaN keeps its sign
    biggest = np.finfo(np.float32).max
    assert np.isinf(round_to_bf16(biggest)) and round_to_bf16(biggest, "truncate") < biggest
    with pytest.raises(ValueError, match="rounding"):
        round_to_tf32(SPECIAL, "up")
    with pytest.raises(ValueError, match="rounding"):
        round_mantissa(SPECIAL, 7, "up")
    with pytest.raises(ValueError, match="mantissa_bits"):
        round_mantissa(SPECIAL, 0)


def errors_against_float64(rng, H, T=64, B=8):
    """Relative error (whole sequence) of float32, TF32 and BF16 forwards against float64."""
    P = rng.uniform(-1, 1, (T, B, H))
    W = rng.uniform(-1, 1, (H, H)) * np.sqrt(3 / H)  # unit-variance rows: the states stay in tanh's bends
    h0 = rng.uniform(-1, 1, (B, H))
    exact = NumpyBackend().recurrence_forward(P, W, h0)
    f32 = NumpyBackend().recurrence_forward(P.astype(np.float32), W.astype(np.float32), h0.astype(np.float32))
    return [np.linalg.norm(a - exact) / np.linalg.norm(exact)
            for a in (f32, recurrence_forward_tf32(P, W, h0), recurrence_forward_bf16(P, W, h0))]


@pytest.mark.parametrize("H", [64, 512])
def test_recurrence_error_bounds_against_float64(rng, H):
    """Over 64 steps (relative, whole sequence, against float64) float32
    stays within 2e-6, TF32 within 2e-3 and BF16 (stored states too) within
    2e-2, each above the one before: float32 stays the one for accuracy."""
    f32, tf32, bf16 = errors_against_float64(rng, H)
    assert f32 < 2e-6
    assert f32 < tf32 < 2e-3
    assert tf32 < bf16 < 2e-2


def test_bf16_recurrence_stores_bf16_states(rng):
    H, B, T = 32, 4, 8
    Hs = recurrence_forward_bf16(rng.uniform(-1, 1, (T, B, H)), rng.uniform(-1, 1, (H, H)) / 4,
                                 rng.uniform(-1, 1, (B, H)))
    assert Hs.dtype == np.float32 and not (Hs.view(np.uint32) & 0xFFFF).any()
