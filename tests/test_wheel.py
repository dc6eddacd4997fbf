"""The package as users get it: a wheel built from the tree, installed into
a fresh virtual environment outside the source tree, trains and runs the
OpenCL kernels (whose sources must ship inside the wheel)."""
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and a virtual environment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a clean copy: no build/ or egg-info left over from the working tree can leak in
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache", ".benchmarks", "runs"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed: {build.stderr[-2000:]}")
    wheel = next((tmp / "dist").glob("rnn_gpu-*.whl"))
    env_dir = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies (numpy, tqdm, PyOpenCL, PoCL) come from this environment, appended after the new
    # one's own site-packages; rnn_gpu itself only from the wheel.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        pytest.fail(f"installing the wheel failed: {install.stderr[-2000:]}")
    return python, tmp


def run_outside(python, tmp, code):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp, env=env, timeout=600)


def test_the_wheel_trains_and_runs_the_opencl_kernels(installed):
    python, tmp = installed
    (tmp / "corpus.txt").write_text("the cat sat on the mat and the dog ran to the red hat. " * 200)
    code = textwrap.dedent("""
        import numpy as np, rnn_gpu
        assert "site-packages" in rnn_gpu.__file__ and "/tests/" not in rnn_gpu.__file__, rnn_gpu.__file__
        from rnn_gpu.cli import main
        assert main(["train", "corpus.txt", "--out", "run", "--hidden", "16", "--batch", "4", "--seq", "8",
                     "--steps", "5", "--backend", "numpy", "--quiet"]) == 0
        from rnn_gpu.kernels import kernel_source, SOURCE_FILE
        assert "recurrence" in kernel_source(SOURCE_FILE)
        try:
            opencl = rnn_gpu.get_backend("opencl")
        except rnn_gpu.BackendUnavailable as exc:
            raise SystemExit(f"no OpenCL: {exc}")
        rng = np.random.default_rng(0)
        P, h0 = rng.uniform(-1, 1, (5, 3, 16)), rng.uniform(-1, 1, (3, 16))
        W = rng.uniform(-0.3, 0.3, (16, 16))
        ref = rnn_gpu.get_backend("numpy").recurrence_forward(P, W, h0)
        np.testing.assert_allclose(opencl.recurrence_forward(P, W, h0), ref, rtol=1e-10, atol=1e-12)
        print("ok")
    """)
    proc = run_outside(python, tmp, code)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
    assert (tmp / "run" / "checkpoint.npz").exists()
