"""Checks of settings given in Python (the CLI's flags make the same ones
while parsing): whole numbers that are not booleans, finite reals in a range.
Imports nothing of the package."""
from __future__ import annotations

import math
from numbers import Integral, Real

MAX_SEED = 2**32 - 1


def whole(value, low: int, high: float = math.inf) -> bool:
    """An integer (not a bool) in [low, high]."""
    return isinstance(value, Integral) and not isinstance(value, bool) and low <= value <= high


def real_in(value, low: float, high: float, low_inclusive: bool = True) -> bool:
    """A finite real (not a bool) in [low, high], or (low, high]."""
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return (low <= value if low_inclusive else low < value) and value <= high
