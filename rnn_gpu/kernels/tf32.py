"""TF32 on the CPU: what a tensor core multiplies, so that a TF32 variant of
the recurrence can be checked without a GPU.

TF32 keeps float32's sign and 8-bit exponent and 10 of its 23 mantissa bits.
Products of TF32 inputs are exact in float32 and the sums accumulate in
float32, so a float32 GEMM of rounded inputs reproduces a tensor core's
result up to the order of its sums.
"""
from __future__ import annotations

import numpy as np

DROPPED_BITS = 13  # float32 mantissa bits TF32 does not keep
KEPT_MASK = np.uint32((0xFFFFFFFF << DROPPED_BITS) & 0xFFFFFFFF)


def round_to_tf32(x, mode: str = "nearest") -> np.ndarray:
    """float32 values rounded to TF32. "nearest": to nearest, ties away from
    zero (PTX cvt.rna.tf32.f32, what cuBLAS does to its inputs); "truncate":
    the low mantissa bits masked off (toward zero). NaN and infinity stay."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32).copy()
    finite = np.isfinite(x)
    if mode == "nearest":
        bits[finite] += np.uint32(1 << (DROPPED_BITS - 1))  # half of TF32's last place; a carry bumps the exponent
    elif mode != "truncate":
        raise ValueError(f"unknown rounding {mode!r}; choose nearest or truncate")
    bits[finite] &= KEPT_MASK
    return bits.view(np.float32)


def recurrence_forward_tf32(P, W, h0, mode: str = "nearest") -> np.ndarray:
    """Hs[t] = tanh(P[t] + tf32(Hs[t-1]) @ tf32(W).T), float32 accumulation:
    the reference a TF32 tensor-core variant of the forward recurrence must match."""
    P = np.asarray(P, dtype=np.float32)
    WT = np.ascontiguousarray(round_to_tf32(W, mode).T)
    Hs = np.empty_like(P)
    h = np.asarray(h0, dtype=np.float32)
    for t in range(P.shape[0]):
        Hs[t] = np.tanh(P[t] + round_to_tf32(h, mode) @ WT)
        h = Hs[t]
    return Hs
