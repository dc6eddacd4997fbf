"""The TF32 reference: rounding checked bit by bit against its definition,
and the recurrence's accuracy against float64."""
import numpy as np
import pytest

from rnn_gpu.backends import NumpyBackend
from rnn_gpu.kernels.tf32 import recurrence_forward_tf32, round_to_tf32


def test_rounding_keeps_ten_mantissa_bits(rng):
    x = (rng.normal(size=10_000) * 10.0 ** rng.integers(-30, 30, 10_000)).astype(np.float32)
    for mode, bound in (("nearest", 2.0**-11), ("truncate", 2.0**-10)):
        y = round_to_tf32(x, mode)
        assert not (y.view(np.uint32) & 0x1FFF).any()  # the 13 dropped bits are zero
        rel = np.abs(y.astype(np.float64) - x) / np.abs(x.astype(np.float64))
        assert rel.max() <= bound, mode
        assert np.array_equal(round_to_tf32(y, mode), y)  # TF32 values are fixed points
    assert np.all(np.abs(round_to_tf32(x, "truncate")) <= np.abs(x))  # truncation rounds toward zero


def test_rounding_to_nearest_breaks_ties_away_from_zero():
    one_ulp = np.float32(2.0**-10)  # TF32's last place at 1.0
    tie = np.float32(1.0) + one_ulp / 2
    assert round_to_tf32(tie) == np.float32(1.0) + one_ulp
    assert round_to_tf32(-tie) == -(np.float32(1.0) + one_ulp)
    assert round_to_tf32(np.nextafter(tie, np.float32(0))) == np.float32(1.0)
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)
    out = round_to_tf32(special)
    assert np.isinf(out[:2]).all() and np.isnan(out[2]) and (out[3:] == 0).all()
    with pytest.raises(ValueError, match="rounding"):
        round_to_tf32(special, "up")


@pytest.mark.parametrize("H", [64, 512])
def test_tf32_recurrence_error_bound_against_float64(rng, H):
    """Over 64 steps the TF32 forward stays within 2e-3 (relative, whole
    sequence) of float64, and float32 within 2e-6: the TF32 path would be
    the faster one, float32 stays the one for accuracy."""
    T, B = 64, 8
    P = rng.uniform(-1, 1, (T, B, H))
    W = rng.uniform(-1, 1, (H, H)) * np.sqrt(3 / H)  # unit-variance rows: the states stay in tanh's bends
    h0 = rng.uniform(-1, 1, (B, H))
    exact = NumpyBackend().recurrence_forward(P, W, h0)
    f32 = NumpyBackend().recurrence_forward(P.astype(np.float32), W.astype(np.float32), h0.astype(np.float32))
    tf32 = recurrence_forward_tf32(P, W, h0)
    error = lambda a: np.linalg.norm(a - exact) / np.linalg.norm(exact)  # noqa: E731
    assert error(f32) < 2e-6
    assert error(f32) < error(tf32) < 2e-3
