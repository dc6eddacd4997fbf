"""The checks of a model's constructor: its sizes, dtype, seed, backend and
given parameters, each a UsageError naming the keyword (the sizes of one
model, checked as the training settings are)."""
from __future__ import annotations

import numpy as np

from .backends import get_backend
from .checks import MAX_SEED, whole
from .errors import UsageError
from .layout import MAX_HIDDEN, MAX_LAYERS, MAX_PARAMETER_BYTES, MAX_VOCAB, param_shapes, parameter_bytes

DTYPES = ("float32", "float64")


def check_sizes(vocab_size, hidden_size, layers, dtype, seed, reserve) -> tuple:
    """(vocab_size, hidden_size, layers, dtype) as Python ints and a NumPy
    float dtype; a UsageError naming the first bad one (the sizes of one
    model, checked as the training settings are)."""
    for name, value, high in (("vocab_size", vocab_size, MAX_VOCAB), ("hidden_size", hidden_size, MAX_HIDDEN),
                              ("layers", layers, MAX_LAYERS), ("seed", seed, MAX_SEED), ("reserve", reserve, 64)):
        if not whole(value, 0 if name in ("seed", "reserve") else 1, high):
            raise UsageError(f"{name}= must be a whole number in [{0 if name in ('seed', 'reserve') else 1}, {high}], "
                             f"got {value!r}")
    try:
        named = np.dtype(dtype).name
    except Exception:  # noqa: BLE001 (NumPy's parser raises TypeError, ValueError, KeyError, SyntaxError, ...)
        named = None
    if named not in DTYPES:
        raise UsageError(f"dtype= must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dtype = np.dtype(named)
    if parameter_bytes(int(hidden_size), int(layers), dtype.name, int(vocab_size)) > MAX_PARAMETER_BYTES:
        raise UsageError(f"hidden_size={hidden_size} x layers={layers} x vocab_size={vocab_size} needs more than "
                         f"{MAX_PARAMETER_BYTES >> 30} GiB for the parameters, gradients and optimiser state")
    return int(vocab_size), int(hidden_size), int(layers), dtype


def backend_of(backend):
    """A backend object, or one found by its name."""
    if isinstance(backend, str):
        return get_backend(backend)
    if not all(hasattr(backend, n) for n in ("xp", "asarray", "to_host", "recurrence_forward")):
        raise UsageError(f"backend= must be a backend (rnn_gpu.get_backend) or its name, got {type(backend).__name__}")
    return backend


def check_param(params, name: str, shape: tuple) -> np.ndarray:
    """params[name] as a finite float array of `shape`, or a UsageError saying what is wrong."""
    if not isinstance(params, dict):
        raise UsageError(f"params= must be a dict of arrays by name, got {type(params).__name__}")
    if name not in params:
        raise UsageError(f"params= lacks {name} (a model of this size has {', '.join(param_shapes(1, 1, 1))} ...)")
    value = params[name]
    try:
        value = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple)) else value
        ok = tuple(value.shape) == shape and value.dtype.kind == "f"
        ok = ok and (not isinstance(value, np.ndarray) or bool(np.isfinite(value).all()))
    except (AttributeError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"params= {name} must be a finite float array of shape {shape}")
    return value
