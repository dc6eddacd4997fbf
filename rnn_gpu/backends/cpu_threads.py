"""The NumPy backend's fast path (`CpuBackend`, the registry's "numpy"):
the plain reference's operations (base.NumpyBackend), and for large steps
threads of its own, one per core, each calling a single-threaded BLAS on its
share, where that measures faster than BLAS's own threads.

Why threads of its own:
- The recurrence's per-step (B, H) x (H, H) GEMM threads badly in OpenBLAS,
  while the B streams never mix inside a recurrence: each core can run the
  whole time loop on its own group of streams, with no synchronisation until
  the end, and the loop's element-wise work (the tanh, the additions), which
  NumPy runs on one core, is spread the same way.
- After a threaded call, OpenBLAS's workers spin on their cores for a while
  (SPIN_SETTLE_S) waiting for the next one, so one threaded BLAS call among
  ours slows the threads of ours that follow it. Every GEMM of a pass
  therefore runs as the pass's recurrences do: on threads of ours (large ones
  split by rows, small ones on the calling thread), or on BLAS's.
- Handing work to a thread costs more than OpenBLAS's spinning workers take,
  so a step whose GEMMs are small keeps BLAS's threads.

Which of the two a step size gets is measured (`CpuThreads.choose`), once per
(T, B, H, dtype, threads) in a process, like the GPU's kernel variants: at the
sizes where ours are tried, the recurrence runs a few rounds both ways, and
ours must be MIN_GAIN faster. docs/backends-and-kernels.md ("CPU threads") and bench/results/
have what this measured, on which machine and when.

Threads: as many as the BLAS library uses when the pass starts, so an MPI
rank limited to one BLAS thread stays on one.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import statistics
import time

import numpy as np

from .base import NumpyBackend

PROBE_STEPS = 64  # at most this many time steps in the recurrence the choice times each way
MIN_PART_FLOPS = 1 << 26  # the least work worth a thread: handing work over costs a fraction of a millisecond
MIN_STEP_FLOPS = 1 << 27  # each thread's per-step recurrence GEMM at least this, or ours are not tried
MIN_GAIN = 1.05  # ours are chosen only when the probe runs at least this much faster on them
PROBE_ROUNDS = 5
SPIN_SETTLE_S = 0.12  # OpenBLAS's idle workers spin about 2^28 cycles before they sleep


def rows_worth_a_thread(inner: int, columns: int) -> int:
    """The fewest rows of a GEMM by an (inner, columns) matrix that make a
    thread's part at least MIN_PART_FLOPS."""
    return -(-MIN_PART_FLOPS // max(1, 2 * inner * columns))


class CpuThreads:
    def __init__(self, threads: int | None = None):
        """`threads`: at most this many; None for the BLAS library's count."""
        self.threads = threads
        self._count = 1  # threads of the region in progress; 1 outside one
        self._pool = None
        self._workers = 0
        self._chosen: dict = {}

    @functools.cached_property
    def _blas(self):
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().select(user_api="blas").lib_controllers

    def available(self) -> int:
        if self.threads is not None:
            return self.threads
        return max((lib.num_threads for lib in self._blas), default=1)

    @contextlib.contextmanager
    def region(self, threads: int):
        """Inside, `run` and `matmul` use up to `threads` threads of ours and
        BLAS one; outside (and for threads=1) BLAS threads as it likes. Nested
        regions keep the outer one."""
        if threads <= 1 or self._count > 1:
            yield
            return
        libs = [lib for lib in self._blas if lib.num_threads != 1]
        before = [lib.num_threads for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        self._count = threads
        try:
            yield
        finally:
            self._count = 1
            for lib, n in zip(libs, before, strict=True):
                lib.set_num_threads(n)

    def choose(self, key, threads: int, step_flops: int, make_probe) -> int:
        """The threads for a step size (`key`): 1 (OpenBLAS's) unless each of
        `threads` of ours would get a per-step recurrence GEMM of `step_flops`
        >= MIN_STEP_FLOPS and the probe (a callable that `make_probe()`
        returns) runs MIN_GAIN faster in a region of ours than with OpenBLAS's
        threads. Measured once per key."""
        if key not in self._chosen:
            worth_trying = threads > 1 and step_flops >= MIN_STEP_FLOPS
            self._chosen[key] = threads if worth_trying and self._faster(make_probe(), threads) else 1
        return self._chosen[key]

    def chosen(self) -> list:
        """The choices measured so far, as JSON-ready [key..., threads] lists."""
        return [[*key, threads] for key, threads in self._chosen.items()]

    def keep(self, chosen) -> None:
        """Takes earlier choices (from `chosen`) as measured: a resumed run
        computes as the run it continues did. Malformed entries are ignored."""
        for entry in chosen or ():
            if isinstance(entry, list) and len(entry) > 1 and isinstance(entry[-1], int) and entry[-1] >= 1:
                self._chosen[tuple(entry[:-1])] = entry[-1]

    def _faster(self, probe, n: int) -> bool:
        ours, theirs = [], []
        for _ in range(PROBE_ROUNDS):
            time.sleep(SPIN_SETTLE_S)  # so that OpenBLAS's last workers are not timed with ours
            ours.append(self._timed(probe, n))
            theirs.append(self._timed(probe, 1))
        return statistics.median(theirs) >= MIN_GAIN * statistics.median(ours)

    def _timed(self, probe, n: int) -> float:
        with self.region(n):
            start = time.perf_counter()
            probe()
            return time.perf_counter() - start

    def parts(self, rows: int, min_rows: int = 1) -> list[slice]:
        """Contiguous, nearly equal slices of range(rows), one per thread of the
        region, none shorter than `min_rows` (one part when rows are too few)."""
        n = max(1, min(self._count, rows // max(1, min_rows)))
        bounds = [rows * i // n for i in range(n + 1)]
        return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def run(self, work, rows: int, min_rows: int = 1) -> None:
        """work(part) for each part of range(rows), in parallel; returns when
        all are done, re-raising a part's exception."""
        parts = self.parts(rows, min_rows)
        if len(parts) == 1:
            work(parts[0])
            return
        pool = self._executor(len(parts) - 1)
        futures = [pool.submit(work, part) for part in parts[1:]]
        try:
            work(parts[0])
        finally:
            concurrent.futures.wait(futures)  # nothing may still write into the arrays after this returns
        for future in futures:
            future.result()

    def matmul(self, a, b, out):
        """out = a @ b for 2-D arrays, split by the rows of `a` and `out`."""
        self.run(lambda rows: np.matmul(a[rows], b, out=out[rows]), a.shape[0],
                 rows_worth_a_thread(a.shape[1], b.shape[1]))
        return out

    def _executor(self, workers: int):
        if self._workers < workers:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="rnn_gpu-cpu")
            self._workers = workers
        return self._pool


class CpuBackend(NumpyBackend):
    """The reference's operations, faster on a multi-core CPU: per step size
    (T, B, H) the recurrence on threads of ours or on BLAS's, whichever
    measured faster. A model's pass begins with
    a recurrence (layer 1's input is a gather of U's columns), and the GEMMs
    after it run as that recurrence chose."""

    def __init__(self, threads: int | None = None):
        """`threads`: at most this many of ours; None for the BLAS library's count."""
        self.cpu = CpuThreads(threads)
        self._pass_threads = 1  # the choice of the latest recurrence, which the GEMMs after it follow

    def threads_chosen(self) -> list:
        return self.cpu.chosen()

    def adopt_threads_chosen(self, chosen) -> None:
        """A resumed run rounds as the run it continues did: its choices, not new measurements."""
        self.cpu.keep(chosen)

    def choose_threads(self, shape: tuple, dtype) -> int:
        """Threads of ours for a recurrence of `shape` = (T, B, H) (1: BLAS's own), measured once per size."""
        T, B, H = shape
        dtype, n = np.dtype(dtype), self.cpu.available()
        return self.cpu.choose((T, B, H, dtype.str, n), n, 2 * (B // n) * H * H,
                               lambda: self._recurrence_probe(min(T, PROBE_STEPS), B, H, dtype))

    def _recurrence_probe(self, steps: int, batch: int, hidden: int, dtype):
        """The forward recurrence at this size, for `choose_threads` to time."""
        rng = np.random.default_rng(0)
        P = rng.uniform(-1, 1, (steps, batch, hidden)).astype(dtype)
        W = (rng.uniform(-1, 1, (hidden, hidden)) / np.sqrt(hidden)).astype(dtype)
        h0 = np.zeros((batch, hidden), dtype)
        return lambda: self._split_forward(P, W, h0)

    def matmul(self, a, b, out=None):
        if out is None:
            out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
        with self.cpu.region(self._pass_threads):
            return self.cpu.matmul(a, b, out)

    def recurrence_forward(self, P, W, h0):
        self._pass_threads = self.choose_threads(P.shape, P.dtype)
        with self.cpu.region(self._pass_threads):
            return self._split_forward(P, W, h0)

    def _split_forward(self, P, W, h0):
        """The reference's loop on each group of streams, one group per thread of the region."""
        Hs = np.empty_like(P)
        WT = np.ascontiguousarray(W.T)
        self._over_streams(P.shape, lambda s: self._forward_loop(P[:, s], WT, h0[s], Hs[:, s]))
        return Hs

    def recurrence_backward(self, G, Hs, h0, W):
        self._pass_threads = self.choose_threads(G.shape, G.dtype)
        with self.cpu.region(self._pass_threads):
            dA = np.empty_like(Hs)
            self._over_streams(G.shape, lambda s: self._backward_loop(G[:, s], Hs[:, s], W, dA[:, s]))
            return dA, self.matmul(dA[0], W)

    def _over_streams(self, shape: tuple, work) -> None:
        """work(s) for slices s of the B streams of a (T, B, H) recurrence,
        which never mixes them: one group per thread of the region."""
        _, B, H = shape
        self.cpu.run(work, B, rows_worth_a_thread(H, H))
