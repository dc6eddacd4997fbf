"""Which kernel variant runs a shape on a device, and with what launch shape.

Pure Python on plain numbers, so selection is tested without a GPU.

  tiled       recurrence_tiled: W (H x H) in one block's shared memory.
  persistent  recurrence_units launched cooperatively over all T steps: every
              block resident, its columns of W on-chip, a grid barrier a step.
  per_step    recurrence_units launched once per step (the kernel boundary
              is the barrier): any device, any H whose slice fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import TILE_ROWS

VARIANTS = ("tiled", "persistent", "per_step")


@dataclass(frozen=True)
class DeviceLimits:
    multiprocessors: int
    shared_per_block: int  # the most dynamic shared memory one block may have (opt-in)
    max_threads_per_block: int
    cooperative: bool  # persistent kernels can be launched with all blocks resident


@dataclass(frozen=True)
class Plan:
    variant: str
    grid: int
    block: int
    shared_bytes: int
    width: int = 0  # units per slice (recurrence_units)
    slice_rows: int = 0  # batch rows per slice (recurrence_units)

    @property
    def kernel(self) -> str:
        return "recurrence_tiled" if self.variant == "tiled" else "recurrence_units"


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def tiled_plan(H: int, B: int, itemsize: int, limits: DeviceLimits) -> Plan | None:
    shared = (H * H + 2 * TILE_ROWS * H) * itemsize
    if shared > limits.shared_per_block:
        return None
    block = min(limits.max_threads_per_block, round_up(H, 32))
    return Plan("tiled", grid=math.ceil(B / TILE_ROWS), block=block, shared_bytes=shared)


def units_shared_bytes(H: int, width: int, block: int, itemsize: int) -> int:
    pass_rows = (block // width) * TILE_ROWS
    return (H * width + pass_rows * (H + 1)) * itemsize


def units_plan(variant: str, H: int, B: int, itemsize: int, limits: DeviceLimits) -> Plan | None:
    """The best (width, batch slices, block) for recurrence_units, or None if
    no slice fits shared memory. A persistent plan needs every work item
    resident: at most one block per multiprocessor.

    Cost model: the multiply-adds one thread does per step (the busiest
    thread sets the pace), ties broken by fewer rows re-read from L2."""
    best, best_cost = None, None
    blocks = limits.multiprocessors
    for batch_slices in (1, 2, 4, 8, 16):
        if batch_slices > B or batch_slices > blocks:
            break
        slice_rows = math.ceil(B / batch_slices)
        width = min(math.ceil(H / (blocks // batch_slices)), limits.max_threads_per_block)
        items = math.ceil(H / width) * math.ceil(B / slice_rows)
        if variant == "persistent" and items > blocks:
            continue
        for block in (1024, 512, 256, 128, 64, 32):
            block = max(block, round_up(width, 32))
            if block > limits.max_threads_per_block:
                continue
            shared = units_shared_bytes(H, width, block, itemsize)
            if shared > limits.shared_per_block:
                continue
            passes = math.ceil(slice_rows / ((block // width) * TILE_ROWS))
            cost = (passes * TILE_ROWS * H, items * slice_rows)
            if best_cost is None or cost < best_cost:
                best, best_cost = Plan(variant, items, block, shared, width, slice_rows), cost
    return best


def choose_plan(H: int, B: int, itemsize: int, limits: DeviceLimits, variant: str | None = None) -> Plan | None:
    """The plan for `variant`, or the fastest variant that fits when None.
    None if nothing fits (the caller falls back to per-step GEMMs)."""
    if variant not in (None, *VARIANTS):
        raise ValueError(f"unknown kernel variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if variant in (None, "tiled"):
        plan = tiled_plan(H, B, itemsize, limits)
        if plan or variant:
            return plan
    if variant in (None, "persistent") and limits.cooperative:
        plan = units_plan("persistent", H, B, itemsize, limits)
        if plan or variant:
            return plan
    if variant == "persistent":
        return None
    return units_plan("per_step", H, B, itemsize, limits)
