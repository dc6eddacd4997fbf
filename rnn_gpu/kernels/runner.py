"""What every kernel runner does alike: plan, then launch once (small,
tiled, persistent) or once per time step (per_step). Subclasses say how to hold
arrays on their device and how to launch."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .plan import DEFAULT_TILE, VARIANTS, DeviceLimits, Plan, candidates, variant_candidates

TUNE_CANDIDATES = 3  # per variant and tile shape
TUNE_TILES = ((1, 4), (2, 4), (4, 4), (8, 4), (4, 8), (8, 8))  # (rows, units) per thread


def memo(runner, table: str, key: tuple, make):
    """The runners' one memo: compiled programs and kernels, plans, tuned
    plans, constant arrays, each in a named table on the runner itself. A
    runner serves one device, so every table is per device, and lives and
    dies with the runner (a module-level cache would keep every runner's
    kernels and device arrays alive for good)."""
    tables = runner.__dict__.setdefault("_memo", {})
    entries = tables.setdefault(table, {})
    if key not in entries:
        entries[key] = make()
    return entries[key]

DROPOUT_SOURCE = "dropout.cu"
DROPOUT_LANES = 32  # threads per (t, stream) row: kernels/dropout.cu's DROPOUT_LANES
# kernels/softmax_cross_entropy.cu's variants: one thread a row, or one block a row
SOFTMAX_VARIANTS = {"rows": "softmax_cross_entropy", "groups": "softmax_cross_entropy_groups"}
SOFTMAX_ROWS_MAX_V = 512  # without a measurement, rows up to this width take a thread each
MAX_ROW_GROUPS = 65535  # blocks of the grouped variant (each strides over the rows)
TUNED_TABLES = ("tuned_plan", "softmax_variant")  # the memo tables autotuning fills (`tuned_choices`)


def per_instance_cache(method):
    """`memo` as a method decorator: the method's arguments are the key."""

    table = method.__name__

    @functools.wraps(method)
    def cached(self, *args):
        try:  # the common case first: a launch's budget is microseconds
            return self.__dict__["_memo"][table][args]
        except KeyError:
            return memo(self, table, args, lambda: method(self, *args))

    return cached


@functools.lru_cache(maxsize=4096)
def int32s(values: tuple) -> tuple:
    """Kernel integer arguments: NumPy int32 scalars, made once (each costs
    about as much as a small launch's Python work)."""
    return tuple(np.int32(v) for v in values)


class KernelRunner:
    limits: DeviceLimits
    xp = np  # the array module of the arrays a runner takes and returns
    autotune = False  # True: `run` times the cost model's best few plans (`_time`) and keeps the fastest
    device_label = ""  # names the device in the tuned choices (`tuned_choices`)

    # -- to be provided by each runner --------------------------------------
    def _launch(self, plan: Plan, dtype, args: list, cooperative: bool) -> None:
        raise NotImplementedError

    def _input(self, a, dtype):
        """An input array as a kernel pointer argument."""
        return self.xp.ascontiguousarray(a, dtype=dtype)

    def _output(self, like, out):
        """The output's kernel argument, starting from `out`'s contents if given."""
        return out if out is not None else self.xp.empty_like(like)

    def _result(self, Y, like, out):
        return Y

    def _barrier_state(self):
        """Two zeroed uint32 for grid_barrier."""
        raise NotImplementedError

    def _launch_rows(self, name: str, source: str, dtype, rows: int, args: list) -> None:
        """Launches a one-thread-per-row kernel over `rows` rows."""
        raise NotImplementedError

    def _launch_groups(self, name: str, source: str, dtype, groups: int, args: list) -> None:
        """Launches `groups` blocks of a kernel that takes one real per thread
        of dynamic shared memory (its last argument in OpenCL)."""
        raise NotImplementedError

    def _time(self, plan: Plan, X, W, Hs, init, backward) -> float:
        """Seconds (or any unit, the same for all plans) of one run with `plan`; inf where it cannot run."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def limits_for(self, dtype, variant: str, tile=DEFAULT_TILE) -> DeviceLimits:
        """The limits that hold for one variant's kernel (its registers can
        lower the block size it can launch with)."""
        return self.limits

    def plan(self, H: int, B: int, dtype, variant: str | None = None) -> Plan | None:
        return self._plan(H, B, np.dtype(dtype), variant)

    @per_instance_cache
    def _plan(self, H: int, B: int, dtype: np.dtype, variant: str | None) -> Plan | None:
        """The cost model's pick of `variant`, or of the first variant that fits.
        Memoized: planning enumerates hundreds of shapes in Python, and a
        training step asks twice."""
        plans = candidates(H, B, dtype.itemsize, lambda v: self.limits_for(dtype, v), variant)
        return plans[0] if plans else None

    def tuned_plan(self, X, W, Hs, init, backward, variant=None) -> Plan | None:
        """The plan `run` takes for these inputs: the cost model's pick, or
        with `autotune` the fastest of its first few plans (of each variant
        when none is named), timed once per shape on these inputs and kept
        (`tuned_choices`; a checkpoint or the cache directory brings earlier
        choices back through `keep_tuned_choices`, and nothing is timed again)."""
        T, B, H = X.shape
        if not self.autotune:
            return self.plan(H, B, X.dtype, variant)
        key = (T, B, H, np.dtype(X.dtype).str, variant)
        plan = memo(self, "tuned_plan", key, lambda: self._tune(X, W, Hs, init, backward, variant))
        adopted = self.__dict__.get("_adopted", set())
        if key in adopted:  # kept from a file: used only if it is a plan of this device for this shape
            adopted.discard(key)
            if plan is not None and plan not in variant_candidates(
                    plan.variant, H, B, X.dtype.itemsize, self.limits_for(X.dtype, plan.variant, plan.tile), plan.tile):
                plan = self.__dict__["_memo"]["tuned_plan"][key] = self._tune(X, W, Hs, init, backward, variant)
        return plan

    def _tune(self, X, W, Hs, init, backward, variant) -> Plan | None:
        pool = self._tune_pool(X.shape[2], X.shape[1], X.dtype, variant)
        return min(pool, key=lambda p: self._time(p, X, W, Hs, init, backward), default=None)

    def _tune_pool(self, H: int, B: int, dtype, variant: str | None) -> list[Plan]:
        """The plans autotuning times for a shape: the cost model's first few of each variant and tile."""
        itemsize = np.dtype(dtype).itemsize
        return [p for v in ((variant,) if variant else VARIANTS) for tile in TUNE_TILES
                for p in variant_candidates(v, H, B, itemsize, self.limits_for(dtype, v, tile),
                                            tile)[:TUNE_CANDIDATES]]

    def tuned_choices(self) -> list:
        """What autotuning decided, as JSON-ready rows [device, table, key,
        value]: launch plans (`tuned_plan`, key [T, B, H, dtype, variant]) and
        softmax variants (`softmax_variant`, key [N, V, dtype]). Both change
        the rounding, so a run keeps them to compute alike when it resumes."""
        tables = self.__dict__.get("_memo", {})
        return [[self.device_label, table, list(key), _encode_choice(table, value)]
                for table in TUNED_TABLES for key, value in tables.get(table, {}).items()]

    def keep_tuned_choices(self, rows) -> int:
        """Adopts `tuned_choices` rows made on a device of this runner's name
        (others are left alone); returns how many."""
        kept = 0
        for row in rows if isinstance(rows, (list, tuple)) else ():
            choice = self._adoptable(row)
            if choice is not None:  # else a damaged row, or another device's: that shape is timed again
                table, key, value = choice
                self.__dict__.setdefault("_memo", {}).setdefault(table, {})[key] = value
                kept += 1
        return kept

    def _adoptable(self, row) -> tuple | None:
        """(table, key, value) of a well-formed `tuned_choices` row of this
        device, else None. A row from a file is trusted for nothing but the
        choice: a launch plan is used only once `tuned_plan` finds it among
        the plans this device has for the shape."""
        try:
            device, table, key, value = row
            if device != self.device_label or not isinstance(key, list):
                return None
            key, value = tuple(key), _decode_choice(table, value)
            if table == "tuned_plan":
                *sizes, dtype, variant = key  # T, B, H
                valid = len(sizes) == 3 and variant in (None, *VARIANTS) and (
                    value is None or (value.variant in VARIANTS and value.tile in (*TUNE_TILES, DEFAULT_TILE)))
            else:
                *sizes, dtype = key  # N, V
                valid = len(sizes) == 2
            valid = valid and all(type(n) is int and n >= 1 for n in sizes) and dtype in ("<f4", "<f8")
        except (TypeError, ValueError, KeyError):
            return None
        if valid and table == "tuned_plan":
            self.__dict__.setdefault("_adopted", set()).add(key)
        return (table, key, value) if valid else None

    def softmax_variant(self, O, targets) -> str:
        """Which variant of SOFTMAX_VARIANTS runs on (N, V) logits; CudaKernels times them."""
        return "rows" if O.shape[1] <= SOFTMAX_ROWS_MAX_V else "groups"

    def softmax_cross_entropy_(self, O, targets, variant: str | None = None):
        """kernels/softmax_cross_entropy.cu: the mean loss as a 0-d array, and
        in place in O (N, V) its gradient (see NumpyBackend's)."""
        N, V = O.shape
        variant = variant or self.softmax_variant(O, targets)
        row_loss = self.xp.empty(N, dtype=O.dtype)
        dO, d_row_loss = self._output(O, O), self._output(row_loss, None)
        args = [dO, self._input(targets, np.int64), d_row_loss, np.int32(N), np.int32(V)]
        if variant == "rows":
            self._launch_rows(SOFTMAX_VARIANTS[variant], "softmax_cross_entropy.cu", O.dtype, N, args)
        else:
            self._launch_groups(SOFTMAX_VARIANTS[variant], "softmax_cross_entropy.cu", O.dtype,
                                min(N, MAX_ROW_GROUPS), args)
        self._result(dO, O, O)
        return self._result(d_row_loss, row_loss, None).sum() / N

    def dropout(self, x, drop, layer: int, out=None):
        """kernels/dropout.cu: x (T, B, H) times layer `layer`'s dropout mask
        of `drop` (rnn_gpu.dropout), into `out` (x itself: in place)."""
        if out is not None and (out.shape != x.shape or not out.flags.c_contiguous):
            raise ValueError("dropout writes a contiguous array of the input's shape")
        T, B, H = x.shape
        dY = self._output(x, out)
        dX = dY if out is x else self._input(x, x.dtype)
        args = [dX, dY, *int32s((T * B, B, H)), *self._dropout_key(drop, layer), np.uint32(drop.threshold),
                drop.scale(x.dtype)]
        self._launch_rows("dropout_apply", DROPOUT_SOURCE, x.dtype, T * B * DROPOUT_LANES, args)
        return self._result(dY, x, out)

    def dropout_hashes(self, drop, layer: int, shape: tuple):
        """The mask's 32-bit hashes, (T, B, ceil(H/2)) uint32, as
        rnn_gpu.dropout.pair_hashes computes them (for the tests)."""
        T, B, H = shape
        like = self.xp.empty((T, B, (H + 1) // 2), dtype=np.uint32)
        dOut = self._output(like, None)
        self._launch_rows("dropout_hashes", DROPOUT_SOURCE, np.float32, T * B * DROPOUT_LANES,
                          [dOut, *int32s((T * B, B, H)), *self._dropout_key(drop, layer)])
        return self._result(dOut, like, None)

    @staticmethod
    def _dropout_key(drop, layer: int) -> tuple:
        """first_stream, seed, layer, step_lo, step_hi: the kernels' unsigned arguments."""
        return tuple(np.uint32(v) for v in (drop.first_stream, drop.seed, layer, *drop.counter_words()))

    def forward(self, P, W, h0, variant=None, plan=None, out=None):
        """Hs with Hs[t] = tanh(P[t] + Hs[t-1] @ W.T), Hs[-1] = h0."""
        return self.run(P, W, P, h0, False, variant, plan, out)

    def backward(self, G, Hs, W, variant=None, plan=None, out=None):
        """dA with dA[t] = (1 - Hs[t]**2) * (G[t] + dA[t+1] @ W), dA[T] = 0."""
        return self.run(G, W, Hs, self._zeros(G.shape[1:], G.dtype), True, variant, plan, out)

    @per_instance_cache
    def _zeros(self, shape: tuple, dtype):
        """A zero array the kernels only read (the backward pass's init): made
        once per shape, not allocated and cleared on every call."""
        return self.xp.zeros(shape, dtype=dtype)

    def run(self, X, W, Hs, init, backward, variant=None, plan=None, out=None):
        T, B, H = X.shape
        plan = plan or self.tuned_plan(X, W, Hs, init, backward, variant)
        if plan is None:
            raise ValueError(f"no kernel variant {variant or ''} fits H={H}, B={B} on this device")
        dX, dW, dHs, dinit = (self._input(a, X.dtype) for a in (X, W, Hs, init))
        dY = self._output(X, out)
        shape, tail = int32s((T, B, H, int(backward))), int32s(tuple(plan.launch_args()))
        if plan.variant in ("small", "tiled"):  # blocks never wait for each other: one launch
            self._launch(plan, X.dtype, [dX, dW, dHs, dinit, dY, *shape, *tail], cooperative=False)
        else:
            barrier = self._barrier_state()
            ranges = [(0, T)] if plan.variant == "persistent" else [(s, s + 1) for s in range(T)]
            for s_range in ranges:
                args = [dX, dW, dHs, dinit, dY, *shape, *int32s(s_range), *tail, barrier]
                self._launch(plan, X.dtype, args, cooperative=plan.variant == "persistent")
        return self._result(dY, X, out)


def _encode_choice(table: str, value):
    return dataclasses.asdict(value) if table == "tuned_plan" and value is not None else value


def _decode_choice(table: str, value):
    """A `tuned_choices` row's value as its memo table holds it; ValueError if it is none."""
    if table == "tuned_plan":
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("tile"), (list, tuple)):
            raise ValueError(f"not a launch plan: {value!r}")
        return Plan(**{**value, "tile": tuple(value["tile"])})
    if table == "softmax_variant" and value in SOFTMAX_VARIANTS:
        return value
    raise ValueError(f"not a tuned choice: {table!r} {value!r}")
