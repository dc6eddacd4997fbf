"""Dropout masks as a pure function of where they are used, made where the
arrays live.

A mask element is a function of (seed, step, layer, stream, t, unit) and
nothing else: no generator state, nothing to checkpoint, the same bits on
every backend and for any split of the streams among processes, and a
process computes only its own streams' masks. `layer` k in 1..L names the
mask on layer k's states (the input of layer k+1, or of the output layer
for k = L); `stream` is the global stream index; `step` the training step.

The function, written once here for NumPy and once in kernels/dropout.cu:

    w0, w1, _, _ = Philox4x32-10(counter = (t, stream, step mod 2^32, step div 2^32),
                                 key = (seed, layer))
    h_j = mix32(j ^ w0) ^ w1          for the unit pair j = (2j, 2j+1)
    unit 2j is kept iff (h_j & 0xffff) >= threshold, unit 2j+1 iff (h_j >> 16) >= threshold

with mix32 the 32-bit finaliser `lowbias32` (xorshift-multiply, a bijection)
and threshold = round(p * 2^16): p is used rounded to a multiple of 2^-16
(within 8e-6 of the setting), and kept units are scaled by 1 / (1 - p') for
the probability p' actually used, so the mask's expectation is exactly 1.

Why this hash. Philox4x32-10 (Salmon et al. 2011; cuRAND, PyTorch and JAX
use it) gives each (t, stream) row 128 independent bits; a cheap bijective
mix of the unit index under the row's key spreads them over the units. On
the 2-core development machine (AMD EPYC, 2026-12-04, load average about 7
from other jobs; 2 layers at T=64, B=32, H=384, `python -m bench.dropout_masks`,
three runs), Philox for every unit cost 1.3-1.4x the host generator this
replaced at 16 bits a decision and 2.4-2.7x at 32 bits, in vectorised NumPy;
this construction costs 0.48-0.50x, because only T x B Philox calls run and
a unit pair costs nine 32-bit array operations. It passes the statistical
checks of tests/test_dropout.py (keep rate, and no correlation between
neighbouring units, time steps, streams, layers, steps or seeds over 10^7
draws). Only 32-bit unsigned arithmetic: the kernel is the same in OpenCL C
and CUDA.

Backward passes apply the same mask again: the NumPy backend keeps the
forward pass's mask (recomputing it measured 1.5x the cost of keeping it,
same runs); the kernel backends recompute it from the key, which on a GPU
costs arithmetic where keeping it costs memory and its traffic.

The other masks of a training step are the same function under a salted
key: the key's second word is `layer + salt`, a salt per mask kind
(SALTS: 0 for the per-step masks above, so they are as they always were),
so masks of different kinds are independent. Each is made by the same code
(here, and kernels/dropout.cu applied to ones on the kernel backends):

    locked    (variational) dropout: the (t = 0, stream) row's mask, used at
              every time step of the window: (1, B_local, H);
    weight    DropConnect on layer k's W: row i of W is the row (t = i,
              stream 0), so every process draws the same (H, H) mask
              whatever its streams (a function of seed, step, layer, unit pair);
    zoneout   which units keep their previous state: the units this
              function would drop with probability p (T, B_local, H).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np

from .checks import MAX_SEED, real_in, whole
from .errors import DropoutError

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # Philox4x32's multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # and its key schedule's increments
PHILOX_ROUNDS = 10
MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)  # lowbias32 (C. Wellons, hash prospector)
DECISION_BITS = 16  # each 32-bit hash decides two units
MASK_KINDS = ("step", "locked")  # dropout's masks: new at every time step, or one per stream and window
# The salt of each mask kind, added to the key's layer word (layers are fewer than 2^16).
SALTS = {"step": 0, "locked": 1 << 16, "weight": 2 << 16, "zoneout": 3 << 16}
_LO = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class Dropout:
    """Which dropout masks: probability `p` of dropping a unit, the run's
    `seed`, the training `step`, and the global index of the first stream of
    the arrays they multiply (a process holding streams [s0, s1) of B passes
    s0). The mask of each layer follows from these and the array's shape.
    `masks` chooses dropout's kind (MASK_KINDS: new at every time step, or
    locked over the window); `weight_drop` is DropConnect's probability on
    each layer's W. The key also draws zoneout's masks, of the model's p."""

    p: float
    seed: int
    step: int
    first_stream: int = 0
    masks: str = "step"  # MASK_KINDS: dropout's masks new at every time step, or locked over the window
    weight_drop: float = 0.0  # DropConnect on each layer's recurrent weights (the `weight` masks)

    def __post_init__(self):
        for name in ("p", "weight_drop"):
            if not (real_in(getattr(self, name), 0, 1) and getattr(self, name) < 1):
                raise DropoutError(f"dropout {name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.masks not in MASK_KINDS:
            raise DropoutError(f"dropout masks must be one of {', '.join(MASK_KINDS)}, got {self.masks!r}")
        for name, high in (("seed", MAX_SEED), ("step", 2**64 - 1), ("first_stream", 2**32 - 1)):
            if not whole(getattr(self, name), 0, high):
                raise DropoutError(f"dropout {name} must be a whole number in [0, {high}], got {getattr(self, name)!r}")

    @property
    def threshold(self) -> int:
        """A unit is kept iff its 16-bit hash is at least this."""
        return min(round(self.p * (1 << DECISION_BITS)), (1 << DECISION_BITS) - 1)

    def scale(self, dtype) -> np.generic:
        """What a kept unit is multiplied by: 1 / (1 - p') for the p' used."""
        full = 1 << DECISION_BITS
        return np.dtype(dtype).type(full / (full - self.threshold))

    @property
    def rate(self) -> float:
        """p' = threshold / 2^16: the probability the masks actually use."""
        return self.threshold / (1 << DECISION_BITS)

    def counter_words(self) -> tuple[int, int]:
        return self.step & 0xFFFFFFFF, self.step >> 32


def used_rate(p: float) -> float:
    """The probability a mask of probability `p` uses: p rounded to a multiple of 2^-16."""
    return Dropout(p, 0, 0).rate


def salted(kind: str, layer: int) -> int:
    """The key's layer word of the `kind` mask on layer `layer` (SALTS)."""
    return SALTS[kind] + layer


def weight_key(drop: Dropout) -> Dropout:
    """The key of the weight-drop masks: probability weight_drop, and no
    stream of their own (every process draws the same masks)."""
    return dataclasses.replace(drop, p=drop.weight_drop, first_stream=0, weight_drop=0.0)


def zoneout_key(drop: Dropout, p: float) -> Dropout:
    """The key of the zoneout masks of probability `p`, this process's streams."""
    return dataclasses.replace(drop, p=p, weight_drop=0.0)


# The shapes each kind's mask function takes: (rows, streams, units), as `mask` and the kernel read them.
def locked_shape(streams: int, hidden: int) -> tuple:
    return (1, streams, hidden)


def weight_shape(hidden: int) -> tuple:
    return (hidden, 1, hidden)


def philox4x32(key, counter, rounds: int = PHILOX_ROUNDS) -> tuple:
    """Philox4x32 (Random123's philox4x32_R) of counters that broadcast
    against each other: four uint32 arrays."""
    k0, k1 = (np.uint64(k) for k in key)
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    m0, m1 = (np.uint64(m) for m in PHILOX_M)
    w0, w1 = (np.uint64(w) for w in PHILOX_W)
    for _ in range(rounds):
        p0, p1 = c0 * m0, c2 * m1
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _LO, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _LO
        k0, k1 = (k0 + w0) & _LO, (k1 + w1) & _LO
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def mix32_(x: np.ndarray) -> np.ndarray:
    """lowbias32 of a uint32 array, in place."""
    a, b = (np.uint32(m) for m in MIX_MULTIPLIERS)
    x ^= x >> np.uint32(16)
    x *= a
    x ^= x >> np.uint32(15)
    x *= b
    x ^= x >> np.uint32(16)
    return x


def row_keys(drop: Dropout, layer: int, steps: int, streams: int) -> tuple:
    """(w0, w1) for each (t, local stream): two (T, B_local) uint32 arrays,
    for the streams [first_stream, first_stream + streams) only."""
    t = np.arange(steps, dtype=np.uint32)[:, None]
    s = np.arange(drop.first_stream, drop.first_stream + streams, dtype=np.uint32)[None, :]
    w0, w1, _, _ = philox4x32((drop.seed, layer), (t, s, *drop.counter_words()))
    shape = (steps, streams)
    return np.broadcast_to(w0, shape), np.broadcast_to(w1, shape)


def pair_hashes(drop: Dropout, layer: int, shape: tuple) -> np.ndarray:
    """h_j for every unit pair of a (T, B_local, H) array: (T, B_local, ceil(H/2)) uint32."""
    T, B, H = shape
    w0, w1 = row_keys(drop, layer, T, B)
    h = np.bitwise_xor(w0[..., None], np.arange((H + 1) // 2, dtype=np.uint32))
    mix32_(h)
    h ^= w1[..., None]
    return h


def keep(drop: Dropout, layer: int, shape: tuple) -> np.ndarray:
    """Which units of a (T, B_local, H) array the mask keeps (bool)."""
    h = pair_hashes(drop, layer, shape)
    if sys.byteorder != "little":
        h = h.astype("<u4")
    halves = h.view("<u2").reshape(*h.shape[:-1], -1)  # unit 2j: the low half of h_j, 2j+1: the high half
    return halves[..., :shape[-1]] >= np.uint16(drop.threshold)


def mask(drop: Dropout, layer: int, shape: tuple, dtype) -> np.ndarray:
    """The inverted-dropout mask itself: 0 or 1 / (1 - p') of `dtype`."""
    return np.multiply(keep(drop, layer, shape), drop.scale(dtype), dtype=dtype)


def locked_mask(drop: Dropout, layer: int, streams: int, hidden: int, dtype) -> np.ndarray:
    """Locked dropout's mask on layer `layer`'s states, (1, B_local, H): the same at every time step."""
    return mask(drop, salted("locked", layer), locked_shape(streams, hidden), dtype)


def weight_mask(drop: Dropout, layer: int, hidden: int, dtype) -> np.ndarray:
    """The weight-drop mask of layer `layer`'s W, (H, H), inverted scaling (1 / (1 - p'))."""
    return mask(weight_key(drop), salted("weight", layer), weight_shape(hidden), dtype).reshape(hidden, hidden)


def zoneout_mask(drop: Dropout, p: float, layer: int, shape: tuple, dtype) -> np.ndarray:
    """1 where a unit of layer `layer` keeps its previous state (probability p'), else 0: (T, B_local, H)."""
    return (~keep(zoneout_key(drop, p), salted("zoneout", layer), shape)).astype(dtype)
