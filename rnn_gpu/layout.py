"""The stacked model's parameter names and shapes, and the one flat buffer
they live in.

Layer 1 is `U` (H, V), `W` (H, H), `b` (H,); layer k >= 2 is `Uk` (H, H),
`Wk` (H, H), `bk` (H,); the output layer is `V` (V, H), `c` (V,). Every
parameter is a view into one contiguous array, so clipping, the finiteness
check, an optimiser update or an all-reduce is one operation over the whole
model. This module imports nothing of the package: checkpoints and the model
both read it.
"""
from __future__ import annotations

import numpy as np

ALIGN = 64  # elements: every view starts 256-byte aligned in float32 (any vector load, any device)
MAX_HIDDEN, MAX_LAYERS = 16384, 64  # units per layer and layers: more is a typo, not a plan
MAX_VOCAB = 0x110000  # symbols: every Unicode code point
MAX_PARAMETER_BYTES = 64 << 30  # parameters, gradients and two optimiser slots
PARAM_NAMES = ("U", "W", "V", "b", "c")  # a one-layer model's, which every model has; param_shapes lists all
# U is stored as its transpose (V, H): the forward pass gathers its rows and its
# gradient is a scatter-add of rows, both on contiguous memory.
STORED_TRANSPOSED = frozenset({"U"})


def layer_names(k: int) -> tuple[str, str, str]:
    """(input weights, recurrent weights, bias) of layer k, counting from 1."""
    return ("U", "W", "b") if k == 1 else (f"U{k}", f"W{k}", f"b{k}")


def param_shapes(vocab_size: int, hidden_size: int, layers: int = 1) -> dict[str, tuple]:
    V, H = int(vocab_size), int(hidden_size)
    shapes = {}
    for k in range(1, layers + 1):
        U, W, b = layer_names(k)
        shapes[U] = (H, V) if k == 1 else (H, H)
        shapes[W] = (H, H)
        shapes[b] = (H,)
    shapes["V"], shapes["c"] = (V, H), (V,)
    return shapes


def parameter_bytes(hidden: int, layers: int, dtype: str, vocab: int = 256) -> int:
    """Parameters, gradients and two optimiser slots, at a vocabulary of `vocab`."""
    count = layers * (2 * hidden * hidden + hidden) + 2 * vocab * hidden
    return 4 * count * (8 if dtype == "float64" else 4)


def state_shape(layers: int, batch: int, hidden: int) -> tuple:
    """The hidden state: (B, H) for one layer (as before layers existed), (L, B, H) for more."""
    return (batch, hidden) if layers == 1 else (layers, batch, hidden)


def layers_in(names) -> int:
    """How many layers a set of parameter names describes (0 if not even one)."""
    names = set(names)
    if not {"U", "W", "b"} <= names:
        return 0
    k = 1
    while set(layer_names(k + 1)) <= names:
        k += 1
    return k


class FlatLayout:
    """Where each named parameter lives in a flat buffer."""

    def __init__(self, shapes: dict[str, tuple]):
        self.shapes = dict(shapes)
        self.offsets, offset = {}, 0
        for name, shape in self.shapes.items():
            self.offsets[name] = offset
            offset += -(-int(np.prod(shape, dtype=np.int64)) // ALIGN) * ALIGN
        self.size = offset

    def views(self, flat) -> dict:
        """Named views into `flat` (NumPy or CuPy), in parameter order."""
        out = {}
        for name, shape in self.shapes.items():
            start = self.offsets[name]
            n = int(np.prod(shape, dtype=np.int64))
            stored = shape[::-1] if name in STORED_TRANSPOSED else shape
            view = flat[start:start + n].reshape(stored)
            out[name] = view.T if name in STORED_TRANSPOSED else view
        return out

    def stored(self, views: dict, name: str):
        """The contiguous array behind a view (U's transpose for U)."""
        return views[name].T if name in STORED_TRANSPOSED else views[name]
