"""Learning-rate schedules: linear warm-up, then constant or cosine decay.

Warm-up rises linearly to the base rate over its steps, whatever the run's
length (so a run stopped during warm-up and resumed with a new --steps is
the same run). The cosine then decays to `min_lr`; its progress is the
larger of the steps after warm-up over the steps left after warm-up, and
elapsed / seconds, so a run bounded by time anneals over its time budget and
a run bounded by steps over its steps. A run bounded by steps alone is
deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class LRSchedule:
    base: float
    kind: str = "cosine"
    warmup: int = 0  # steps of linear warm-up, from base / warmup at step 1 to base at step `warmup`
    min_lr: float | None = None  # where the cosine ends; None: base / 10
    steps: int | None = None  # the run's total steps, if bounded by steps
    seconds: float | None = None  # the run's total training time, if bounded by time

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}")

    def progress(self, step: int, elapsed: float) -> float:
        """How far through the decay step `step` (1 = the first after warm-up) is, in [0, 1]."""
        parts = [0.0]
        if self.steps:
            parts.append((step - 1 - self.warmup) / max(1, self.steps - self.warmup))
        if self.seconds:
            parts.append(elapsed / self.seconds)
        return min(1.0, max(parts))

    def __call__(self, step: int, elapsed: float = 0.0) -> float:
        """The learning rate of step `step` (counting from 1), `elapsed`
        seconds of training into the run."""
        if step <= self.warmup:
            return self.base * step / self.warmup
        if self.kind == "constant":
            return self.base
        low = self.base / 10 if self.min_lr is None else self.min_lr
        return low + (self.base - low) * 0.5 * (1 + math.cos(math.pi * self.progress(step, elapsed)))
