"""Which kernel variant runs a shape on a device, and with what launch shape.

Pure Python on plain numbers, so selection is tested without a GPU.

  tiled       recurrence_tiled: W (H x H) in one block's shared memory.
  persistent  recurrence_units launched cooperatively over all T steps: every
              block resident, its columns of W on-chip, a grid barrier a step.
  per_step    recurrence_units launched once per step (the kernel boundary
              is the barrier): any device, any H whose slice fits.

`candidates` lists the launch shapes that fit, cheapest first by a simple
cost model (the multiply-adds and partial sums on the busiest thread's path
each step); a runner may time the first few and keep the fastest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import TILE_ROWS, TILE_UNITS

VARIANTS = ("tiled", "persistent", "per_step")
POWERS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


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
    groups: int  # thread groups of TILE_ROWS rows each: a pass covers groups * TILE_ROWS rows
    parts: int  # the inputs are split into this many shares, summed in shared memory
    width: int = 0  # units per slice (recurrence_units)
    slice_rows: int = 0  # batch rows per slice (recurrence_units)
    chunk: int = 0  # inputs staged at a time (recurrence_units)
    cost: float = 0.0

    @property
    def kernel(self) -> str:
        return "recurrence_tiled" if self.variant == "tiled" else "recurrence_units"

    def launch_args(self) -> list[int]:
        """The kernel's trailing shape arguments after (..., backward[, s_begin, s_end])."""
        if self.variant == "tiled":
            return [self.groups, self.parts]
        return [self.width, self.slice_rows, self.groups, self.parts, self.chunk]


def lanes_for(width: int) -> int:
    return -(-width // TILE_UNITS)


def tiled_shared_bytes(H: int, groups: int, parts: int, itemsize: int) -> int:
    mstride, pass_rows = lanes_for(H) * TILE_UNITS, groups * TILE_ROWS
    return (H * mstride + 2 * pass_rows * (H + 1) + parts * pass_rows * mstride) * itemsize


def units_shared_bytes(H: int, width: int, groups: int, parts: int, chunk: int, itemsize: int) -> int:
    mstride, pass_rows = lanes_for(width) * TILE_UNITS, groups * TILE_ROWS
    return (H * mstride + pass_rows * (chunk + 1) + parts * pass_rows * mstride) * itemsize


def step_cost(H: int, rows: int, width: int, groups: int, parts: int, block: int, blocks_per_wave: float) -> float:
    """Rough cycles on the busiest thread per step: its multiply-adds, the
    finishing sums, and a block barrier's cost growing with the warps."""
    passes = math.ceil(rows / (groups * TILE_ROWS))
    pass_rows = groups * TILE_ROWS
    multiply_adds = TILE_ROWS * TILE_UNITS * math.ceil(H / parts)
    finish = math.ceil(pass_rows * width / block) * (parts + 24)
    barriers = 3 * (block // 32 + 8)
    return blocks_per_wave * passes * (multiply_adds + finish + barriers)


def tiled_candidates(H: int, B: int, itemsize: int, limits: DeviceLimits) -> list[Plan]:
    plans = []
    lanes = lanes_for(H)
    for groups in POWERS:
        if groups > 1 and (groups // 2) * TILE_ROWS >= B:
            break
        for parts in POWERS:
            block = lanes * groups * parts
            if parts > max(1, H // 4) or block > limits.max_threads_per_block:
                break
            shared = tiled_shared_bytes(H, groups, parts, itemsize)
            if shared > limits.shared_per_block:
                continue
            grid = math.ceil(B / (groups * TILE_ROWS))
            waves = math.ceil(grid / limits.multiprocessors)
            cost = step_cost(H, groups * TILE_ROWS, H, groups, parts, block, waves)
            plans.append(Plan("tiled", grid, block, shared, groups, parts, cost=cost))
    return sorted(plans, key=lambda p: p.cost)


def units_candidates(variant: str, H: int, B: int, itemsize: int, limits: DeviceLimits) -> list[Plan]:
    """Launch shapes for recurrence_units. A persistent plan needs every work
    item resident: at most one block per multiprocessor."""
    plans = []
    blocks = limits.multiprocessors
    for batch_slices in POWERS:
        if batch_slices > B or batch_slices > blocks:
            break
        slice_rows = math.ceil(B / batch_slices)
        width = math.ceil(H / max(1, blocks // batch_slices))
        width = min(width, limits.max_threads_per_block * TILE_UNITS)
        items = math.ceil(H / width) * math.ceil(B / slice_rows)
        if variant == "persistent" and items > blocks:
            continue
        lanes = lanes_for(width)
        for groups in POWERS:
            if groups > 1 and (groups // 2) * TILE_ROWS >= slice_rows:
                break
            for parts in POWERS:
                block = lanes * groups * parts
                if parts > max(1, H // 4) or block > limits.max_threads_per_block:
                    break
                chunk = next((c for c in (H, 1024, 512, 256, 128, 64, 32, 16, 8)
                              if c <= H and units_shared_bytes(H, width, groups, parts, c, itemsize)
                              <= limits.shared_per_block), None)
                if chunk is None:
                    continue
                shared = units_shared_bytes(H, width, groups, parts, chunk, itemsize)
                waves = math.ceil(items / blocks) if variant == "per_step" else 1
                cost = step_cost(H, slice_rows, width, groups, parts, block, waves)
                cost += math.ceil(H / chunk) * 2 * (block // 32 + 8)  # staging barriers
                plans.append(Plan(variant, items, block, shared, groups, parts, width, slice_rows, chunk, cost))
    return sorted(plans, key=lambda p: p.cost)


def candidates(H: int, B: int, itemsize: int, limits: DeviceLimits, variant: str | None = None) -> list[Plan]:
    """Plans for `variant` (None: the first variant with any, in the order
    tiled, persistent, per_step), cheapest first; empty if nothing fits."""
    if variant not in (None, *VARIANTS):
        raise ValueError(f"unknown kernel variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    for v in VARIANTS if variant is None else (variant,):
        if v == "tiled":
            plans = tiled_candidates(H, B, itemsize, limits)
        elif v == "persistent" and not limits.cooperative:
            plans = []
        else:
            plans = units_candidates(v, H, B, itemsize, limits)
        if plans:
            return plans
    return []


def choose_plan(H: int, B: int, itemsize: int, limits: DeviceLimits, variant: str | None = None) -> Plan | None:
    """The cheapest plan by the cost model, or None if nothing fits (the
    caller falls back to per-step GEMMs)."""
    plans = candidates(H, B, itemsize, limits, variant)
    return plans[0] if plans else None
