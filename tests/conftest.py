"""Shared fixtures (plain helpers: helpers.py): every backend-generic test
runs once per backend.

CuPy cases carry the `gpu` marker and are skipped (reported as skipped)
where no CUDA device is usable. Tests that start MPI jobs (the `mpiexec`
fixture) carry the `slow` marker: `pytest -m "not slow"` is the quick loop.
"""
import os
import zlib

import numpy as np
import pytest

# Re-exported for test modules that still import them from here; new code imports them from helpers.
from helpers import (  # noqa: F401
    REQUIRE_KERNEL_TOOLS,
    REQUIRE_MPI,
    SMALL,
    WORDS,
    make_corpus_text,
    mpiexec_path,
    numerical_gradient,
    skip_unless_required,
)

from rnn_gpu import get_backend
from rnn_gpu.backends import cupy_unavailable_reason

BACKENDS = ["numpy", "opencl", pytest.param("cupy", marks=pytest.mark.gpu)]

# A test that uses one of these fixtures is `slow` wherever it is written.
SLOW_FIXTURES = {"mpiexec"}
# Slow tests in modules whose owners have not marked them there yet (each trains models for seconds):
# a mark in the module itself replaces an entry here.
def pytest_collection_modifyitems(items):
    """Marks `opencl` every test that runs the kernels through OpenCL (the
    `opencl` fixture or the opencl backend): `pytest -m opencl` runs them
    alone, as .ci/run does on its second OpenCL platform. Marks `slow` every
    test that starts MPI jobs (SLOW_FIXTURES), so a new one is left out of
    `pytest -m "not slow"` without a mark of its own."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "opencl" in item.fixturenames or (callspec and callspec.params.get("backend") == "opencl"):
            item.add_marker(pytest.mark.opencl)
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "cupy":
        reason = cupy_unavailable_reason()
        if reason:
            pytest.skip(reason)
    if request.param == "opencl":
        from rnn_gpu.kernels.opencl_runner import opencl_unavailable_reason

        reason = opencl_unavailable_reason()
        if reason:
            skip_unless_required(reason)
    return get_backend(request.param)


@pytest.fixture
def numpy_backend():
    return get_backend("numpy")


@pytest.fixture(scope="session")
def opencl():
    """The OpenCL kernel runner (on a CPU: PoCL)."""
    from rnn_gpu.kernels.opencl_runner import OpenCLKernels, opencl_unavailable_reason

    reason = opencl_unavailable_reason()
    if reason:
        skip_unless_required(reason)
    return OpenCLKernels()


# Fresh random inputs on every run; RNN_GPU_TEST_SEED=N replays a run.
SESSION_SEED = int(os.environ.get("RNN_GPU_TEST_SEED", np.random.SeedSequence().entropy % 2**32))


def pytest_report_header(config):
    from rnn_gpu.kernels.opencl_runner import describe_device

    return [f"random inputs seeded with RNN_GPU_TEST_SEED={SESSION_SEED}", f"OpenCL kernels on: {describe_device()}"]


@pytest.fixture
def rng(request):
    return np.random.default_rng([SESSION_SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(autouse=True, scope="session")
def prepared_corpus_cache(tmp_path_factory):
    """Prepared forms of test corpora go to a temporary cache, not ~/.cache."""
    os.environ["RNN_GPU_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(make_corpus_text(20_000), encoding="utf-8")
    return path


@pytest.fixture
def trained_small_run(corpus_file, tmp_path):
    """A finished 10-step run (helpers.SMALL) in tmp_path / "run"."""
    from rnn_gpu.cli import main

    out = tmp_path / "run"
    assert main(["train", str(corpus_file), "--out", str(out), *SMALL, "--steps", "10", "--eval-every", "5"]) == 0
    return out


# -- MPI jobs (helpers.py starts them) ------------------------------------------
@pytest.fixture(scope="module")
def mpiexec():
    """The launcher's path; a skip (under RNN_GPU_REQUIRE_MPI=1 a failure) without MPI. Its tests are `slow`."""
    path = mpiexec_path()
    reason = None
    if path is None:
        reason = "no mpiexec (pip install 'rnn_gpu[mpi]')"
    else:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            reason = "mpi4py is not installed (pip install 'rnn_gpu[mpi]')"
    if reason:
        if REQUIRE_MPI:
            pytest.fail(f"required MPI missing: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """Short enough that 4 streams of 8 wrap within 50 steps (1,080 training symbols: 33 steps a pass)."""
    path = tmp_path_factory.mktemp("mpi") / "corpus.txt"
    path.write_text(make_corpus_text(1_200, seed=3), encoding="utf-8")
    return path
