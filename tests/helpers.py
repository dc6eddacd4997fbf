"""Plain helpers that more than one test module uses (fixtures live in
conftest.py). Test modules import them as `from helpers import NAME`; no
test module imports another."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# -- the kernel tools ----------------------------------------------------------
# CI sets this: there, missing kernel tools (PyOpenCL with PoCL, NVRTC) are
# a failure, not a skip, so the kernel source is always run and compiled.
REQUIRE_KERNEL_TOOLS = os.environ.get("RNN_GPU_REQUIRE_KERNEL_TOOLS") == "1"


def skip_unless_required(reason: str):
    if REQUIRE_KERNEL_TOOLS:
        pytest.fail(f"required kernel tool missing: {reason}")
    pytest.skip(reason)


# -- corpora and gradients -----------------------------------------------------
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


def whole_and_resumed(main, common: list, root, steps: int):
    """The checkpoints of a run of `steps` and of one stopped halfway and
    resumed (`rnn-gpu train COMMON`), for a test that they are bit-identical."""
    from rnn_gpu.checkpoint import load_checkpoint

    assert main(["train", *common, "--out", str(root / "whole"), "--steps", str(steps)]) == 0
    assert main(["train", *common, "--out", str(root / "split"), "--steps", str(steps // 2)]) == 0
    assert main(["train", *common, "--out", str(root / "split"), "--resume", "--steps", str(steps)]) == 0
    return load_checkpoint(root / "whole"), load_checkpoint(root / "split")


# -- the command line in this process ------------------------------------------
# A tiny NumPy run for the command line's tests: `train CORPUS --out OUT *SMALL`.
SMALL = ["--hidden", "8", "--batch", "2", "--seq", "4", "--quiet", "--backend", "numpy"]


def one_error(capsys, argv, code):
    """main(argv) returns `code` and prints exactly one `error:` line, which it returns."""
    from rnn_gpu.cli import main

    got = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def assert_usage_error(capsys, argv, *fragments):
    """main(argv) is bad input: exit code 2 and one `error:` line holding every fragment."""
    from rnn_gpu.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- MPI jobs ------------------------------------------------------------------
# Each job runs `mpiexec -n N` as a subprocess with OMP_NUM_THREADS=1 and a
# hard timeout, so a hung collective fails a test instead of the suite. CI sets
# RNN_GPU_REQUIRE_MPI=1: there a missing MPI fails instead of skipping (the
# `mpiexec` fixture of conftest.py).
TIMEOUT = 180  # seconds for any one job
REQUIRE_MPI = os.environ.get("RNN_GPU_REQUIRE_MPI") == "1"


def mpiexec_path() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def job_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_", "SLURM_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def rnn_gpu_command(*args):
    """`python -m rnn_gpu ARGS` as an argument list."""
    return [sys.executable, "-m", "rnn_gpu", *args]


def run_job(mpiexec, n, args, timeout=TIMEOUT, wrapper=None):
    """`mpiexec -n n python -m rnn_gpu ARGS`, or a Python wrapper script run on every rank."""
    command = [sys.executable, "-c", wrapper, *args] if wrapper else rnn_gpu_command(*args)
    return subprocess.run([mpiexec, "-n", str(n), *command], capture_output=True, text=True, timeout=timeout,
                          env=job_env())


def run_single(args, timeout=TIMEOUT):
    """`python -m rnn_gpu ARGS` as one process, with a job's environment."""
    return subprocess.run(rnn_gpu_command(*args), capture_output=True, text=True, timeout=timeout, env=job_env())


def train_args(corpus, out, *extra):
    return ["train", str(corpus), "--out", str(out), "--hidden", "12", "--batch", "4", "--seq", "8", "--quiet",
            "--eval-every", "25", "--log-every", "5", "--backend", "numpy", *extra]


def wait_for_step(metrics: Path, step: int, proc, timeout=TIMEOUT):
    """Returns once `metrics` logs `step`; fails if the job ends first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            try:
                if lines and json.loads(lines[-1])["step"] >= step:
                    return
            except ValueError:
                pass  # read while rank 0 was writing the line
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError(f"no step {step} in {metrics}")


def child_pids(pid: int) -> list[str]:
    """The launcher's descendants' parents: mpiexec, then its proxies."""
    found, frontier = [str(pid)], [str(pid)]
    while frontier:
        out = subprocess.run(["pgrep", "-P", ",".join(frontier)], capture_output=True, text=True).stdout.split()
        frontier = [p for p in out if p not in found]
        found += frontier
    return found


def training_ranks(launcher: int) -> list[int]:
    """The pids of the job's ranks (`rnn_gpu train` below the launcher), as pgrep lists them."""
    listed = subprocess.run(["pgrep", "-f", "-P", ",".join(child_pids(launcher)), "rnn_gpu train"],
                            capture_output=True, text=True).stdout.split()
    return [int(p) for p in listed]
