"""Tensor-core inputs on the CPU: the values a TF32 or BF16 tensor core
multiplies, so that a tensor-core variant of the recurrence can be checked
without a GPU.

Both formats keep float32's sign and 8-bit exponent and fewer mantissa bits:
TF32 10 of 23, BF16 7. Products of such inputs are exact in float32 and the
sums accumulate in float32, so a float32 GEMM of rounded inputs reproduces a
tensor core's result up to the order of its sums. TF32 is a compute format
(float32 storage, inputs rounded on the way in); BF16 is also a storage
format, so in bf16 the stored activations (P, h0 and every state) are BF16
values too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOAT32_MANTISSA = 23
QUIET_NAN_BIT = np.uint32(1 << (FLOAT32_MANTISSA - 1))


@dataclass(frozen=True)
class Format:
    name: str
    mantissa_bits: int  # explicit mantissa bits kept of float32's 23
    ties: str  # how round to nearest breaks ties: "even" or "away" (from zero)
    stored: bool  # activations are stored in this format, not in float32


TF32 = Format("tf32", 10, "away", stored=False)  # PTX cvt.rna.tf32.f32, what cuBLAS does to its inputs
BF16 = Format("bf16", 7, "even", stored=True)  # PTX cvt.rn.bf16.f32, PyTorch's float -> bfloat16
FORMATS = {f.name: f for f in (TF32, BF16)}


def round_mantissa(x, mantissa_bits: int, rounding: str = "even") -> np.ndarray:
    """float32 values rounded to `mantissa_bits` explicit mantissa bits, as
    float32. `rounding`: "even" (to nearest, ties to even), "away" (to
    nearest, ties away from zero) or "truncate" (toward zero). A carry out of
    the mantissa bumps the exponent, up to infinity; subnormals round on the
    same grid; infinities stay; NaN stays NaN (quiet, its sign and kept
    payload bits kept, the dropped bits cleared)."""
    dropped = FLOAT32_MANTISSA - mantissa_bits
    if not 0 <= dropped < FLOAT32_MANTISSA:  # at least one bit, where a NaN keeps its quiet bit
        raise ValueError(f"mantissa_bits must be within 1..{FLOAT32_MANTISSA}, not {mantissa_bits}")
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32).copy()
    kept = np.uint32((0xFFFFFFFF << dropped) & 0xFFFFFFFF)
    finite = np.isfinite(x)
    if dropped and rounding in ("even", "away"):
        half = np.uint32(1 << (dropped - 1))  # half of the last kept place
        if rounding == "even":  # one less than half, plus the last kept bit: ties go to the even side
            bits[finite] += half - np.uint32(1) + ((bits[finite] >> np.uint32(dropped)) & np.uint32(1))
        else:
            bits[finite] += half
    elif rounding not in ("even", "away", "truncate"):
        raise ValueError(f"unknown rounding {rounding!r}; choose even, away or truncate")
    nan = np.isnan(x)
    bits[nan] |= QUIET_NAN_BIT  # a NaN whose payload lies in the dropped bits must not become infinity
    bits &= kept
    return bits.view(np.float32)


def round_to(x, fmt: Format, mode: str = "nearest") -> np.ndarray:
    """float32 values rounded to `fmt`: "nearest" as its hardware converts,
    "truncate" the dropped bits masked off (toward zero)."""
    if mode not in ("nearest", "truncate"):
        raise ValueError(f"unknown rounding {mode!r}; choose nearest or truncate")
    return round_mantissa(x, fmt.mantissa_bits, fmt.ties if mode == "nearest" else "truncate")


def round_to_tf32(x, mode: str = "nearest") -> np.ndarray:
    """TF32: to nearest with ties away from zero, or truncated."""
    return round_to(x, TF32, mode)


def round_to_bf16(x, mode: str = "nearest") -> np.ndarray:
    """BF16 (as float32 values): to nearest with ties to even, or truncated."""
    return round_to(x, BF16, mode)


def recurrence_forward_emulated(P, W, h0, fmt: Format, mode: str = "nearest") -> np.ndarray:
    """Hs[t] = tanh(P[t] + r(Hs[t-1]) @ r(W).T), r rounding to `fmt`, float32
    accumulation and tanh; where `fmt` is a storage format, P, h0 and each
    Hs[t] are stored rounded too. The reference a tensor-core variant of the
    forward recurrence must match."""
    store = (lambda a: round_to(a, fmt, mode)) if fmt.stored else (lambda a: np.asarray(a, dtype=np.float32))
    P = store(P)
    WT = np.ascontiguousarray(round_to(W, fmt, mode).T)
    Hs = np.empty_like(P)
    h = store(h0)
    for t in range(P.shape[0]):
        Hs[t] = store(np.tanh(P[t] + round_to(h, fmt, mode) @ WT))
        h = Hs[t]
    return Hs


def recurrence_forward_tf32(P, W, h0, mode: str = "nearest") -> np.ndarray:
    return recurrence_forward_emulated(P, W, h0, TF32, mode)


def recurrence_forward_bf16(P, W, h0, mode: str = "nearest") -> np.ndarray:
    return recurrence_forward_emulated(P, W, h0, BF16, mode)
