"""Named recipes: training settings a user can start from (`rnn-gpu train
--recipe NAME`, `rnn_gpu.train(..., recipe=NAME)`); a setting given beside a
recipe wins over the recipe's. Each says where its figures were measured,
or that they were not yet: docs/performance.md has the runs."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Recipe:
    settings: dict
    measured: str  # where and when its figures come from; "" for a recipe no run has measured yet


RECIPES = {
    # The best of the 600-second CPU ablation (bench/ablation.py; docs/performance.md).
    "cpu-600s": Recipe({"layers": 2, "hidden": 384, "dropout": 0.1, "warmup": 100, "batch": 32, "seq": 64,
                        "lr": 0.002, "time": 600.0},
                       "a 2-core AMD EPYC, 2026-12-07 (docs/performance.md, Quality)"),
    # Sized for an hour on an H200-class GPU: deeper and wider, residual, locked dropout.
    "gpu-hour": Recipe({"layers": 3, "hidden": 1024, "residual": True, "dropout": 0.25, "dropout_masks": "locked",
                        "warmup": 500, "batch": 128, "seq": 128, "lr": 0.002, "time": 3600.0}, ""),
}


def recipe_settings(name: str | None, given: dict) -> dict:
    """The settings of recipe `name` (None: none) under those `given`."""
    if name is None:
        return dict(given)
    if not isinstance(name, str) or name not in RECIPES:
        raise UsageError(f"recipe= must be one of {', '.join(RECIPES)}, got {name!r}")
    return {**RECIPES[name].settings, **given}
