"""Which kernel variant runs a shape on a device, and with what launch shape.

Pure Python on plain numbers, so selection is tested without a GPU.

  small       recurrence_small: W in registers, SMALL_K weights a thread, a block
              of H x ceil(H / SMALL_K) threads: H as large as the kernel's
              block limit allows (`small_candidates`).
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

from . import SMALL_K, TILE_ROWS, TILE_UNITS

DEFAULT_TILE = (TILE_ROWS, TILE_UNITS)

VARIANTS = ("small", "tiled", "persistent", "per_step")
VARIANT_KERNELS = {"small": "recurrence_small", "tiled": "recurrence_tiled", "persistent": "recurrence_units",
                   "per_step": "recurrence_units"}
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
    tile: tuple = DEFAULT_TILE  # (rows, units) one thread carries: compile-time TILE_ROWS, TILE_UNITS

    @property
    def kernel(self) -> str:
        return VARIANT_KERNELS[self.variant]

    def launch_args(self) -> list[int]:
        """The kernel's trailing shape arguments after (..., backward[, s_begin, s_end])."""
        if self.variant == "small":
            return [self.slice_rows]
        if self.variant == "tiled":
            return [self.groups, self.parts]
        return [self.width, self.slice_rows, self.groups, self.parts, self.chunk]


def lanes_for(width: int, tile=DEFAULT_TILE) -> int:
    return -(-width // tile[1])


def round_up_to(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def padded(n: int) -> int:
    """Inputs and weight rows as the kernels hold them: read four at a time."""
    return round_up_to(n, 4)


def staged_size(rows: int, stride: int, tile=DEFAULT_TILE) -> int:
    """Reals in a buffer of staged rows (kernels/recurrence.cu: staged_row)."""
    return rows * stride + rows // tile[0] * 4


def tiled_shared_bytes(H: int, groups: int, parts: int, itemsize: int, tile=DEFAULT_TILE) -> int:
    mstride, pass_rows = lanes_for(H, tile) * tile[1], groups * tile[0]
    buffer = staged_size(pass_rows, padded(H), tile)
    return (padded(H) * mstride + 2 * buffer + parts * pass_rows * mstride) * itemsize


def units_shared_bytes(H: int, width: int, groups: int, parts: int, chunk: int, itemsize: int,
                       tile=DEFAULT_TILE) -> int:
    mstride, pass_rows = lanes_for(width, tile) * tile[1], groups * tile[0]
    buffer = staged_size(pass_rows, padded(chunk), tile)
    return (padded(H) * mstride + buffer + parts * pass_rows * mstride) * itemsize


def step_cost(H: int, rows: int, width: int, groups: int, parts: int, block: int, blocks_per_wave: float,
              tile=DEFAULT_TILE) -> float:
    """Rough cycles on the busiest thread per step: its multiply-adds and
    shared loads, the finishing sums, and block barriers growing with the warps."""
    passes = math.ceil(rows / (groups * tile[0]))
    pass_rows = groups * tile[0]
    inner = (tile[0] * tile[1] + tile[0] + tile[1]) * math.ceil(H / parts)
    finish = math.ceil(pass_rows * width / block) * (parts + 24)
    barriers = 3 * (block // 32 + 8)
    return blocks_per_wave * passes * (inner + finish + barriers)


def thread_shapes(lanes: int, rows: int, H: int, tile, max_threads: int):
    """(groups, parts, block): blocks of lanes x groups x parts threads, with
    no more row groups than `rows` needs and at least 4 inputs per part."""
    for groups in POWERS:
        if groups > 1 and (groups // 2) * tile[0] >= rows:
            return
        for parts in POWERS:
            block = lanes * groups * parts
            if parts > max(1, H // 4) or block > max_threads:
                break
            yield groups, parts, block


def small_shared_bytes(H: int, rows: int, itemsize: int) -> int:
    parts = -(-H // SMALL_K)
    return (2 * staged_size(rows, parts * SMALL_K) + parts * rows * H) * itemsize


def small_candidates(H: int, B: int, itemsize: int, limits: DeviceLimits) -> list[Plan]:
    """recurrence_small: H x ceil(H / SMALL_K) threads a block, `rows` rows each."""
    parts = -(-H // SMALL_K)
    block = round_up_to(H * parts, 32)
    if block > limits.max_threads_per_block:
        return []
    plans = []
    for rows in (1, 2, 4, 8):
        shared = small_shared_bytes(H, rows, itemsize)
        if shared > limits.shared_per_block or (rows > 1 and rows // 2 >= B):
            continue
        grid = math.ceil(B / rows)
        cost = math.ceil(grid / limits.multiprocessors) * rows * (SMALL_K + parts + 24) + 3 * (block // 32 + 8)
        plans.append(Plan("small", grid, block, shared, groups=1, parts=parts, slice_rows=rows, cost=cost))
    return sorted(plans, key=lambda p: p.cost)


def tiled_candidates(H: int, B: int, itemsize: int, limits: DeviceLimits, tile=DEFAULT_TILE) -> list[Plan]:
    plans = []
    for groups, parts, block in thread_shapes(lanes_for(H, tile), B, H, tile, limits.max_threads_per_block):
        shared = tiled_shared_bytes(H, groups, parts, itemsize, tile)
        if shared > limits.shared_per_block:
            continue
        grid = math.ceil(B / (groups * tile[0]))
        waves = math.ceil(grid / limits.multiprocessors)
        cost = step_cost(H, groups * tile[0], H, groups, parts, block, waves, tile)
        plans.append(Plan("tiled", grid, block, shared, groups, parts, cost=cost, tile=tile))
    return sorted(plans, key=lambda p: p.cost)


def units_candidates(variant: str, H: int, B: int, itemsize: int, limits: DeviceLimits,
                     tile=DEFAULT_TILE) -> list[Plan]:
    """Launch shapes for recurrence_units. A persistent plan needs every work
    item resident: at most one block per multiprocessor."""
    plans = []
    blocks = limits.multiprocessors
    for batch_slices in POWERS:
        if batch_slices > B or batch_slices > blocks:
            break
        slice_rows = math.ceil(B / batch_slices)
        widest = min(math.ceil(H / max(1, blocks // batch_slices)), limits.max_threads_per_block * tile[1])
        # Per step, blocks need not be resident: narrower slices (more of them) fit devices with little
        # shared memory per block.
        widths = [widest] + ([w for w in (64, 32, 16, 8) if w < widest] if variant == "per_step" else [])
        for width in widths:
            items = math.ceil(H / width) * math.ceil(B / slice_rows)
            if variant == "persistent" and items > blocks:
                continue
            plans += slice_candidates(variant, H, itemsize, limits, tile, width, slice_rows, items)
    return sorted(plans, key=lambda p: p.cost)


def slice_candidates(variant: str, H: int, itemsize: int, limits: DeviceLimits, tile, width: int,
                     slice_rows: int, items: int) -> list[Plan]:
    """The thread shapes for one slicing (width units x slice_rows rows)."""
    plans = []
    waves = math.ceil(items / limits.multiprocessors) if variant == "per_step" else 1
    for groups, parts, block in thread_shapes(lanes_for(width, tile), slice_rows, H, tile,
                                              limits.max_threads_per_block):
        chunk = next((c for c in (H, 1024, 512, 256, 128, 64, 32, 16, 8)
                      if c <= H and units_shared_bytes(H, width, groups, parts, c, itemsize, tile)
                      <= limits.shared_per_block), None)
        if chunk is None:
            continue
        shared = units_shared_bytes(H, width, groups, parts, chunk, itemsize, tile)
        cost = step_cost(H, slice_rows, width, groups, parts, block, waves, tile)
        cost += math.ceil(H / chunk) * 2 * (block // 32 + 8)  # staging barriers
        plans.append(Plan(variant, items, block, shared, groups, parts, width, slice_rows, chunk, cost, tile))
    return plans


def variant_candidates(variant: str, H: int, B: int, itemsize: int, limits: DeviceLimits,
                       tile=DEFAULT_TILE) -> list[Plan]:
    """Plans for one variant, cheapest first; empty if none fits."""
    if variant == "small":
        return small_candidates(H, B, itemsize, limits) if tile == DEFAULT_TILE else []
    if variant == "tiled":
        return tiled_candidates(H, B, itemsize, limits, tile)
    if variant == "persistent" and not limits.cooperative:
        return []
    return units_candidates(variant, H, B, itemsize, limits, tile)


def candidates(H: int, B: int, itemsize: int, limits, variant: str | None = None,
               tile=DEFAULT_TILE) -> list[Plan]:
    """Plans for `variant` (None: the first variant with any, in the order
    of VARIANTS), cheapest first; empty if nothing fits. `limits` is the
    device's DeviceLimits, or a function giving each variant's (a kernel's
    registers can lower the block size it launches with)."""
    if variant not in (None, *VARIANTS):
        raise ValueError(f"unknown kernel variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    limits_of = limits if callable(limits) else lambda v: limits
    for v in VARIANTS if variant is None else (variant,):
        plans = variant_candidates(v, H, B, itemsize, limits_of(v), tile)
        if plans:
            return plans
    return []


def choose_plan(H: int, B: int, itemsize: int, limits: DeviceLimits, variant: str | None = None,
                tile=DEFAULT_TILE) -> Plan | None:
    """The cheapest plan by the cost model, or None if nothing fits (the
    caller falls back to per-step GEMMs)."""
    plans = candidates(H, B, itemsize, limits, variant, tile)
    return plans[0] if plans else None
