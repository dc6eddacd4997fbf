"""A kernel variant against the float64 NumPy loop: the one harness that the
tests assert on and the GPU check records."""
from __future__ import annotations

import numpy as np

from ..backends import NumpyBackend

REFERENCE = NumpyBackend()


def random_case(rng, H, B, T, dtype):
    """Inputs rounded to `dtype`, and the float64 reference computed from
    exactly those values, so only the kernel's own arithmetic counts.
    Returns (P, W, h0, G, Hs, dA)."""
    def draw(low, high, shape, scale=1.0):
        return (rng.uniform(low, high, shape) * scale).astype(dtype).astype(np.float64)

    P = draw(-1, 1, (T, B, H))
    W = draw(-1.5, 1.5, (H, H), 1 / np.sqrt(H))  # strong enough to leave tanh's linear range
    h0 = draw(-1, 1, (B, H))
    G = draw(-1, 1, (T, B, H))
    Hs = REFERENCE.recurrence_forward(P, W, h0)
    Hs = Hs.astype(dtype).astype(np.float64)  # the backward kernel reads Hs in dtype
    dA, _ = REFERENCE.recurrence_backward(G, Hs, h0, W)
    return P, W, h0, G, Hs, dA


def relative_error(got, want) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - want) / max(np.linalg.norm(want), 1e-30))


def variant_errors(runner, rng, H, B, T, dtype, variant=None, plan=None) -> dict:
    """Forward and backward of one variant on fresh random inputs, outputs
    poisoned with NaN first: relative errors, elements left unwritten, dtypes."""
    xp = runner.xp
    P, W, h0, G, Hs, dA = random_case(rng, H, B, T, dtype)
    dev = [xp.asarray(a, dtype=dtype) for a in (P, W, h0, G, Hs)]
    result = {}
    for direction, want in (("fwd", Hs), ("bwd", dA)):
        out = xp.full((T, B, H), np.nan, dtype=dtype)
        if direction == "fwd":
            got = runner.forward(dev[0], dev[1], dev[2], variant=variant, plan=plan, out=out)
        else:
            got = runner.backward(dev[3], dev[4], dev[1], variant=variant, plan=plan, out=out)
        got = got.get() if hasattr(got, "get") and not isinstance(got, np.ndarray) else np.asarray(got)
        unwritten = int(np.isnan(got).sum())
        result[f"{direction}_unwritten"] = unwritten
        result[f"{direction}_dtype"] = np.dtype(got.dtype).name
        result[f"{direction}_rel_error"] = relative_error(np.nan_to_num(got), want) if not unwritten else float("nan")
    result["unwritten"] = result["fwd_unwritten"] + result["bwd_unwritten"]
    return result
