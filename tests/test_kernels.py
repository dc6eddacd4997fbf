"""Every kernel variant against the float64 NumPy reference loop.

The OpenCL runner executes the kernel source on the CPU (PoCL) in every test
run; the CUDA runner runs the same source on a GPU (marked `gpu`). Outputs
are poisoned with NaN before each run so unwritten elements fail.
"""
import numpy as np
import pytest

from rnn_gpu.backends import cupy_unavailable_reason
from rnn_gpu.kernels import define_options
from rnn_gpu.kernels.check import variant_errors
from rnn_gpu.kernels.plan import DeviceLimits, Plan, choose_plan, tiled_shared_bytes, units_shared_bytes

SHAPES = [(H, B, T) for H in (1, 37, 130, 257) for B in (1, 3, 65) for T in (1, 2, 33)]


@pytest.fixture(scope="module")
def cuda():
    reason = cupy_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import cupy

    from rnn_gpu.kernels.cuda_runner import CudaKernels

    return CudaKernels(cupy)


def check_runner(runner, rng, H, B, T, dtype, variant=None, plan=None):
    """Forward and backward of one variant against the reference."""
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    got = variant_errors(runner, rng, H, B, T, dtype, variant, plan)
    for direction in ("fwd", "bwd"):
        assert got[f"{direction}_unwritten"] == 0, f"{direction}: unwritten elements"
        assert got[f"{direction}_dtype"] == np.dtype(dtype).name
        assert got[f"{direction}_rel_error"] < tolerance, f"{direction}: error {got[f'{direction}_rel_error']:.2e}"


def fitting(runner, H, B, dtype, variant):
    plan = runner.plan(H, B, dtype, variant)
    if plan is None:
        pytest.skip(f"{variant} does not fit H={H} {np.dtype(dtype).name} on {runner.limits}")
    return plan


# -- OpenCL on the CPU: every test run ---------------------------------------

@pytest.mark.parametrize("H,B,T", SHAPES)
@pytest.mark.parametrize("variant", ["small", "tiled", "per_step"])
def test_opencl_float32(opencl, rng, H, B, T, variant):
    fitting(opencl, H, B, np.float32, variant)
    check_runner(opencl, rng, H, B, T, np.float32, variant)


@pytest.mark.parametrize("H,B,T", [(37, 3, 2), (130, 65, 33), (257, 3, 5)])
@pytest.mark.parametrize("variant", ["small", "tiled", "per_step"])
def test_opencl_float64(opencl, rng, H, B, T, variant):
    fitting(opencl, H, B, np.float64, variant)
    check_runner(opencl, rng, H, B, T, np.float64, variant)


@pytest.mark.parametrize("width,slice_rows,grid,groups,parts,chunk", [
    (16, 5, 1, 1, 2, 130), (7, 65, 3, 2, 1, 32), (64, 1, 200, 1, 1, 130), (50, 64, 2, 3, 3, 48),
    (130, 9, 4, 1, 1, 17)])
def test_opencl_units_kernel_any_slicing(opencl, rng, width, slice_rows, grid, groups, parts, chunk):
    """Slices that do not divide H or B, input chunks that do not divide H,
    parts that share the inputs unevenly, grids smaller than the work (blocks
    loop over items and reload W) and larger than it (idle blocks)."""
    H, B, T = 130, 65, 4
    block = -(-width // 4) * groups * parts
    shared = units_shared_bytes(H, width, groups, parts, chunk, 4)
    plan = Plan("per_step", grid, block, shared, groups, parts, width, slice_rows, chunk)
    check_runner(opencl, rng, H, B, T, np.float32, plan=plan)


def test_opencl_units_kernel_chunks_wider_than_the_block(opencl, rng):
    """Chunks of more columns than a work-group has threads, and more rows
    than one load batch: staging loops over columns and batches, with the
    next chunk's first batch loaded during the sums."""
    H, B, T, width, groups, parts, chunk = 600, 21, 3, 40, 4, 2, 300
    block = -(-width // 4) * groups * parts
    shared = units_shared_bytes(H, width, groups, parts, chunk, 4)
    plan = Plan("per_step", 5, block, shared, groups, parts, width, B, chunk)
    check_runner(opencl, rng, H, B, T, np.float32, plan=plan)


@pytest.mark.parametrize("H,groups,parts,grid", [(37, 1, 1, 2), (37, 2, 3, 1), (130, 1, 5, 3), (8, 4, 2, 40)])
def test_opencl_tiled_any_shape(opencl, rng, H, groups, parts, grid):
    block = -(-H // 4) * groups * parts
    plan = Plan("tiled", grid, block, tiled_shared_bytes(H, groups, parts, 4), groups, parts)
    check_runner(opencl, rng, H, 65, 7, np.float32, plan=plan)


@pytest.mark.parametrize("tile", [(8, 4), (3, 8), (1, 12)])
def test_opencl_other_tile_shapes(opencl, rng, tile):
    """The tile a thread carries is a compile-time choice; any works whose
    units are a multiple of 4."""
    H, B = 45, 19
    for variant in ("tiled", "per_step"):
        plan = choose_plan(H, B, 4, opencl.limits, variant, tile)
        assert plan.tile == tile
        check_runner(opencl, rng, H, B, 6, np.float32, plan=plan)


def random_plan(rng, opencl, H, B, tile):
    """A launch shape drawn at random that fits a work-group and the
    device's shared memory: units slicing, rows, parts and chunks that need
    not divide anything."""
    while True:
        variant = str(rng.choice(["tiled", "per_step"]))
        width = H if variant == "tiled" else int(rng.integers(1, H + 1))
        lanes = -(-width // tile[1])
        groups, parts = int(rng.integers(1, 5)), int(rng.integers(1, 9))
        if lanes * groups * parts > opencl.limits.max_threads_per_block:
            continue
        grid = int(rng.integers(1, 12))
        if variant == "tiled":
            plan = Plan("tiled", grid, lanes * groups * parts, tiled_shared_bytes(H, groups, parts, 4, tile),
                        groups, parts, tile=tile)
        else:
            slice_rows, chunk = int(rng.integers(1, B + 1)), int(rng.integers(1, H + 1))
            shared = units_shared_bytes(H, width, groups, parts, chunk, 4, tile)
            plan = Plan("per_step", grid, lanes * groups * parts, shared, groups, parts, width, slice_rows, chunk,
                        tile=tile)
        if plan.shared_bytes <= opencl.limits.shared_per_block:
            return plan


@pytest.mark.parametrize("tile", [(4, 4), (3, 8)])
def test_opencl_random_launch_shapes(opencl, rng, tile):
    """Random shapes and launch shapes, fresh each run: the padding to four
    inputs, the skewed rows and the batched finishing hold for all of them."""
    for _ in range(12):
        H, B, T = int(rng.integers(1, 300)), int(rng.integers(1, 40)), int(rng.integers(1, 4))
        plan = random_plan(rng, opencl, H, B, tile)
        check_runner(opencl, rng, H, B, T, np.float32, plan=plan)


def test_units_per_thread_must_be_a_multiple_of_4():
    with pytest.raises(ValueError, match="multiple of 4"):
        define_options(np.float32, (3, 5))


# -- planner, on made-up devices -------------------------------------------

H100_LIKE = DeviceLimits(multiprocessors=132, shared_per_block=227 * 1024, max_threads_per_block=1024,
                         cooperative=True)


def test_planner_prefers_small_then_tiled_then_persistent_then_per_step():
    assert choose_plan(128, 64, 4, H100_LIKE).variant == "small"
    assert choose_plan(200, 64, 4, H100_LIKE).variant == "tiled"  # 200 x 7 threads: too many for registers
    largest_tiled = max(H for H in range(1, 400) if tiled_shared_bytes(H, 1, 1, 4) <= H100_LIKE.shared_per_block)
    assert choose_plan(largest_tiled, 64, 4, H100_LIKE).variant == "tiled"
    assert choose_plan(largest_tiled + 1, 64, 4, H100_LIKE).variant == "persistent"
    assert choose_plan(2048, 64, 4, H100_LIKE).variant == "persistent"
    no_coop = DeviceLimits(132, 227 * 1024, 1024, cooperative=False)
    assert choose_plan(1024, 64, 4, no_coop).variant == "per_step"


@pytest.mark.parametrize("H,B", [(300, 64), (512, 64), (1024, 128), (2048, 64), (2500, 32)])
def test_persistent_plans_fit_and_are_resident(H, B):
    plan = choose_plan(H, B, 4, H100_LIKE, "persistent")
    assert plan.grid <= H100_LIKE.multiprocessors
    assert plan.shared_bytes <= H100_LIKE.shared_per_block
    assert plan.block <= 1024 and plan.block >= -(-plan.width // 4)
    slices = -(-H // plan.width) * -(-B // plan.slice_rows)
    assert slices == plan.grid


def test_planner_gives_up_when_nothing_fits():
    tiny = DeviceLimits(multiprocessors=2, shared_per_block=1024, max_threads_per_block=64, cooperative=False)
    assert choose_plan(512, 8, 4, tiny) is None


# -- CUDA: the same checks on a GPU -----------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("H,B,T", SHAPES)
@pytest.mark.parametrize("variant", ["small", "tiled", "persistent", "per_step"])
def test_cuda_float32(cuda, rng, H, B, T, variant):
    fitting(cuda, H, B, np.float32, variant)
    check_runner(cuda, rng, H, B, T, np.float32, variant)


@pytest.mark.gpu
@pytest.mark.parametrize("H,B,T", [(37, 3, 2), (130, 65, 33), (257, 65, 5), (1024, 64, 8)])
@pytest.mark.parametrize("variant", ["small", "tiled", "persistent", "per_step"])
def test_cuda_float64(cuda, rng, H, B, T, variant):
    fitting(cuda, H, B, np.float64, variant)
    check_runner(cuda, rng, H, B, T, np.float64, variant)


@pytest.mark.gpu
@pytest.mark.parametrize("H,B,T", [(512, 64, 16), (1024, 128, 10), (2048, 64, 6)])
def test_cuda_large_persistent(cuda, rng, H, B, T):
    plan = fitting(cuda, H, B, np.float32, "persistent")
    assert plan.grid <= cuda.limits.multiprocessors
    check_runner(cuda, rng, H, B, T, np.float32, "persistent")


@pytest.mark.gpu
def test_cuda_variant_selection_at_device_limits(cuda):
    limits = cuda.limits_for(np.float32, "small")
    largest_small = max(H for H in range(1, 1000) if limits.max_threads_per_block >= -(-H * -(-H // 32) // 32) * 32)
    assert cuda.plan(largest_small, 64, np.float32).variant == "small"
    assert cuda.plan(largest_small + 1, 64, np.float32).variant == "tiled"
    largest_tiled = max(H for H in range(1, 1000) if tiled_shared_bytes(H, 1, 1, 4) <= limits.shared_per_block)
    assert cuda.plan(largest_tiled, 64, np.float32, "tiled") is not None
    assert cuda.plan(largest_tiled + 1, 64, np.float32).variant == ("persistent" if limits.cooperative else "per_step")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 4, 8, 16, 32])
def test_group_sum_matches_a_plain_sum(opencl, rng, dtype, width):
    """portable.h's group_sum on PoCL (the shared-memory butterfly) against
    NumPy: every thread of a group of `width` gets the group's sum."""
    import pyopencl as cl

    from rnn_gpu.kernels import define_options, kernel_source
    from rnn_gpu.kernels.opencl_runner import WORK_GROUP, build_program

    n = int(rng.integers(1, 3 * WORK_GROUP))
    x = rng.uniform(-1, 1, n).astype(dtype)
    ctx, queue = opencl.context, opencl.queue
    program, _ = build_program(cl, ctx, opencl.device, kernel_source("selftest.cu"), define_options(dtype),
                               "selftest.cu")
    mf = cl.mem_flags
    x_buf = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x)
    out = np.full(n, np.nan, dtype=dtype)
    out_buf = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=out)
    groups = -(-n // WORK_GROUP)
    program.group_sum_test(queue, (groups * WORK_GROUP,), (WORK_GROUP,), x_buf, out_buf, np.int32(n), np.int32(width),
                           cl.LocalMemory(WORK_GROUP * np.dtype(dtype).itemsize))
    cl.enqueue_copy(queue, out, out_buf)
    padded = np.concatenate([x.astype(np.float64), np.zeros(groups * WORK_GROUP - n)])
    expected = np.repeat(padded.reshape(-1, width).sum(axis=1), width)[:n]
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-6)
    for start in range(0, n - width + 1, width):  # the butterfly leaves every lane with the very same bits
        assert np.all(out[start:start + width] == out[start])


def test_opencl_builds_keep_their_log_without_a_warning(opencl, monkeypatch, capsys):
    """pyopencl's CompilerWarning is silenced, not the log: the runner keeps each
    build's log, RNN_GPU_OPENCL_LOG=1 prints it, and a failed build raises with
    the compiler's message."""
    import warnings

    import pyopencl as cl

    from rnn_gpu.kernels import SOURCE_FILE
    from rnn_gpu.kernels.opencl_runner import OpenCLKernels, build_program
    from rnn_gpu.kernels.plan import DEFAULT_TILE

    monkeypatch.delenv("PYOPENCL_COMPILER_OUTPUT", raising=False)
    monkeypatch.setenv("RNN_GPU_OPENCL_LOG", "1")
    runner = OpenCLKernels()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cl.CompilerWarning)
        program = runner._program(np.dtype(np.float32), DEFAULT_TILE, SOURCE_FILE)
    log = program.get_build_info(runner.device, cl.program_build_info.LOG).strip()
    assert runner.build_logs == {("<f4", DEFAULT_TILE, SOURCE_FILE): log} and runner.last_build_log == log
    assert f"OpenCL build log of {SOURCE_FILE} (" in capsys.readouterr().err
    with pytest.raises(cl.Error, match="undefined_name"):
        build_program(cl, runner.context, runner.device, "__kernel void k(void) { undefined_name(); }", [],
                      "a broken kernel")


def softmax_reference(O, targets):
    """Plain float64 loops: the mean loss and its gradient for the logits."""
    N, V = O.shape
    grad, loss = np.empty((N, V)), 0.0
    for n in range(N):
        row = O[n].astype(np.float64)
        p = np.exp(row - row.max())
        p /= p.sum()
        loss -= np.log(p[targets[n]])
        p[targets[n]] -= 1
        grad[n] = p / N
    return loss / N, grad


SOFTMAX_SHAPES = [(1, 1), (3, 2), (37, 257), (64, 8000), (5, 70001)]


def check_softmax(runner, rng, N, V, variant, dtype, xp=np):
    O = (rng.standard_normal((N, V)) * 4).astype(dtype)
    targets = rng.integers(0, V, N)
    loss_ref, grad_ref = softmax_reference(O, targets)
    got = xp.asarray(O)
    loss = runner.softmax_cross_entropy_(got, xp.asarray(targets), variant)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert float(loss) == pytest.approx(loss_ref, rel=tol)
    np.testing.assert_allclose(got if xp is np else got.get(), grad_ref, rtol=tol * 10, atol=tol / N / 10)


@pytest.mark.parametrize("N,V", SOFTMAX_SHAPES)
@pytest.mark.parametrize("variant", ["rows", "groups"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_opencl_softmax_cross_entropy_variants(opencl, rng, N, V, variant, dtype):
    """Both variants of kernels/softmax_cross_entropy.cu on PoCL, at character
    and word vocabularies (V up to 70001: rows wider than a block many times)."""
    check_softmax(opencl, rng, N, V, variant, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("N,V", [*SOFTMAX_SHAPES, (2048, 8000), (70000, 65)])
@pytest.mark.parametrize("variant", ["rows", "groups", None])
def test_cuda_softmax_cross_entropy_variants(cuda, rng, N, V, variant):
    """On a GPU, each variant and the timed choice (None)."""
    check_softmax(cuda, rng, N, V, variant, np.float32, cuda.xp)
