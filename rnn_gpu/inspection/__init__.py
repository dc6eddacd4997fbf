"""The vanishing gradient made visible: `inspect` measures a model's
gradient norm against distance, its saturated units and the largest
singular value of each W (report.py); `measures` holds the plain NumPy
math, which the trainer's evaluations use too."""
from .report import inspect

__all__ = ["inspect"]
