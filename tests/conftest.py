"""Shared fixtures: every backend-generic test runs once per backend.

CuPy cases carry the `gpu` marker and are skipped (reported as skipped)
where no CUDA device is usable.
"""
import os
import zlib

import numpy as np
import pytest

from rnn_gpu import get_backend
from rnn_gpu.backends import cupy_unavailable_reason

BACKENDS = ["numpy", "opencl", pytest.param("cupy", marks=pytest.mark.gpu)]


# CI sets this: there, missing kernel tools (PyOpenCL with PoCL, NVRTC) are
# a failure, not a skip, so the kernel source is always run and compiled.
REQUIRE_KERNEL_TOOLS = os.environ.get("RNN_GPU_REQUIRE_KERNEL_TOOLS") == "1"


def skip_unless_required(reason: str):
    if REQUIRE_KERNEL_TOOLS:
        pytest.fail(f"required kernel tool missing: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(items):
    """Marks `opencl` every test that runs the kernels through OpenCL (the
    `opencl` fixture or the opencl backend): `pytest -m opencl` runs them
    alone, as .ci/run does on its second OpenCL platform."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "opencl" in item.fixturenames or (callspec and callspec.params.get("backend") == "opencl"):
            item.add_marker(pytest.mark.opencl)


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


WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "red", "hat"]


def make_corpus_text(n_chars: int, seed: int = 0) -> str:
    """A small learnable language: random sentences over a dozen words."""
    rng = np.random.default_rng(seed)
    parts, size = [], 0
    while size < n_chars:
        sentence = " ".join(rng.choice(WORDS, size=rng.integers(3, 8))) + ".\n"
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:n_chars]


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(make_corpus_text(20_000), encoding="utf-8")
    return path


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of scalar f() with respect to every element of x (in place)."""
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad
