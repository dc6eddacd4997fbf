"""Checks of values given in Python (the CLI's flags make the same ones
while parsing): whole numbers that are not booleans, finite reals in a range,
paths, flags; NumPy scalars taken as the Python values they hold. Imports
nothing of the package but its errors."""
from __future__ import annotations

import math
import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from .errors import UsageError

MAX_SEED = 2**32 - 1


def python_value(value):
    """A NumPy scalar as the Python number, string or bool it holds; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def whole(value, low: int, high: float = math.inf) -> bool:
    """An integer (not a bool) in [low, high]."""
    value = python_value(value)
    return isinstance(value, Integral) and not isinstance(value, bool) and low <= value <= high


def real_in(value, low: float, high: float, low_inclusive: bool = True) -> bool:
    """A finite real (not a bool) in [low, high], or (low, high]."""
    value = python_value(value)
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return (low <= value if low_inclusive else low < value) and value <= high


def flag_value(value, name: str) -> bool:
    """True or False (a NumPy bool too); anything else is a UsageError naming `name=`."""
    value = python_value(value)
    if not isinstance(value, bool):
        raise UsageError(f"{name}= must be True or False, got {value!r}")
    return value


def path_value(value, name: str) -> Path:
    """A path given as a str or an os.PathLike (not empty, no NUL byte); a UsageError naming `name=` otherwise."""
    try:
        text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    except TypeError:  # an os.PathLike whose __fspath__ returns something else
        text = None
    if not isinstance(text, str) or not text.strip() or "\0" in text:
        raise UsageError(f"{name}= must be a path (a str or os.PathLike), got {value!r}")
    return Path(text)


def paths_value(value, name: str) -> list[Path]:
    """One path or a non-empty list or tuple of them."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise UsageError(f"{name}= must name at least one path, got {value!r}")
        return [path_value(v, name) for v in value]
    return [path_value(value, name)]
