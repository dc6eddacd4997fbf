"""Each recurrence kernel stays inside the shared memory its plan reserved.

The kernels run on OpenCL (PoCL on a CPU) through a wrapper per kernel: it
takes the plan's shared bytes plus a guard region on either side, fills both
guards with a sentinel, calls the kernel on the middle, and counts the guard
words that changed. A plan whose reservation is cut short must be caught."""
import dataclasses
import re

import numpy as np
import pytest

from rnn_gpu.backends import NumpyBackend
from rnn_gpu.kernels import SOURCE_FILE, define_options, kernel_source
from rnn_gpu.kernels.opencl_runner import WORK_GROUP, OpenCLKernels, build_program

GUARD = 64  # reals on each side (a multiple of 4: the kernel's buffer stays 16-byte aligned)
SENTINEL = 0x7FBADBAD
SIGNATURE = re.compile(r"KERNEL void (?:LAUNCH_BOUNDS\(\w+\)\s*)?(\w+)\(([^)]*?)\s*DYNAMIC_SHARED_ARG\)")


def guarded_wrappers(source: str) -> str:
    """guarded_NAME for each kernel NAME of `source` with dynamic shared memory."""
    wrappers = []
    for name, params in SIGNATURE.findall(source):
        args = ", ".join(re.findall(r"\w+", p)[-1] for p in params.split(","))
        wrappers.append(f"""
KERNEL void guarded_{name}({params}, GLOBAL unsigned int *violations, int reserved DYNAMIC_SHARED_ARG)
{{
    __local unsigned int *words = (__local unsigned int *)dynamic_shared;
    for (int i = THREAD_ID; i < {GUARD}; i += BLOCK_SIZE) {{
        words[i] = {SENTINEL}u;
        words[{GUARD} + reserved + i] = {SENTINEL}u;
    }}
    SYNC_BLOCK();
    {name}({args}, dynamic_shared + {GUARD});
    SYNC_BLOCK();
    for (int i = THREAD_ID; i < {GUARD}; i += BLOCK_SIZE)
        atomic_add(violations, (words[i] != {SENTINEL}u) + (words[{GUARD} + reserved + i] != {SENTINEL}u));
}}""")
    return source + "".join(wrappers)


class GuardedKernels(OpenCLKernels):
    """The OpenCL runner launching the guarded wrappers (float32 only: the sentinel is one word per real)."""

    def __init__(self):
        super().__init__()
        self.launches = []  # (kernel, guard words changed) per launch
        self._programs = {}

    def _launch(self, plan, dtype, args, cooperative):
        assert not cooperative and np.dtype(dtype) == np.float32
        if plan.tile not in self._programs:
            options = [*define_options(dtype, plan.tile), "-DCHECK_ALIGNMENT=1"]
            self._programs[plan.tile], _ = build_program(self.cl, self.context, self.device,
                                                         guarded_wrappers(kernel_source(SOURCE_FILE)), options,
                                                         "the guarded wrappers")
        zero = np.zeros(1, np.uint32)
        counter = self._output(zero, zero)
        kernel = self.cl.Kernel(self._programs[plan.tile], f"guarded_{plan.kernel}")
        kernel(self.queue, (plan.grid * WORK_GROUP,), (WORK_GROUP,), *args, counter, np.int32(plan.shared_bytes // 4),
               self.cl.LocalMemory(plan.shared_bytes + 2 * GUARD * 4))
        self.launches.append((plan.kernel, int(self._result(counter, np.zeros(1, np.uint32), None)[0])))


@pytest.fixture(scope="module")
def guarded(opencl):
    return GuardedKernels()


def test_every_kernel_has_a_wrapper():
    names = [name for name, _ in SIGNATURE.findall(kernel_source(SOURCE_FILE))]
    assert sorted(names) == sorted(["recurrence_small", "recurrence_tiled", "recurrence_units"])


def run_both(runner, rng, H, B, plan, T=5):
    P = rng.uniform(-1, 1, (T, B, H)).astype(np.float32)
    W = (rng.uniform(-1, 1, (H, H)) / np.sqrt(H)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (B, H)).astype(np.float32)
    G = rng.uniform(-1, 1, (T, B, H)).astype(np.float32)
    Hs = runner.forward(P, W, h0, plan=plan)
    dA = runner.backward(G, Hs, W, plan=plan)
    ref, f64 = NumpyBackend(), lambda a: a.astype(np.float64)
    dA64, _ = ref.recurrence_backward(f64(G), f64(Hs), f64(h0), f64(W))
    return np.abs(Hs - ref.recurrence_forward(f64(P), f64(W), f64(h0))).max(), np.abs(dA - dA64).max()


SHAPES = [(v, H, B) for v in ("small", "tiled", "per_step") for H, B in ((37, 5), (64, 9))] + \
    [("tiled", 130, 3), ("per_step", 130, 3)]  # above the small kernel's H on OpenCL


@pytest.mark.parametrize("variant,H,B", SHAPES)
def test_kernels_write_only_inside_their_plan(guarded, rng, variant, H, B):
    plan = guarded.plan(H, B, np.float32, variant)
    guarded.launches.clear()
    errors = run_both(guarded, rng, H, B, plan)
    assert max(errors) < 1e-4  # the wrapped kernel did its work
    assert guarded.launches and all(kernel == plan.kernel for kernel, _ in guarded.launches)
    assert [changed for _, changed in guarded.launches] == [0] * len(guarded.launches)


@pytest.mark.parametrize("variant", ["small", "tiled", "per_step"])
def test_a_reservation_cut_short_is_caught(guarded, rng, variant):
    plan = guarded.plan(64, 9, np.float32, variant)
    short = dataclasses.replace(plan, shared_bytes=plan.shared_bytes - 16)
    guarded.launches.clear()
    run_both(guarded, rng, 64, 9, short)
    assert any(changed for _, changed in guarded.launches)
