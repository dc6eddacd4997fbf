"""The kernels compile with NVRTC, CuPy's compiler, for the GPUs we target,
on a machine without a GPU."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import skip_unless_required

from rnn_gpu.kernels import SOURCES
from rnn_gpu.kernels.__main__ import ARCHITECTURES, DTYPES, compile_all
from rnn_gpu.kernels.nvrtc import NvrtcUnavailable, compile_cubin, library, version


@pytest.fixture(scope="module")
def nvrtc():
    try:
        return version()
    except NvrtcUnavailable as exc:
        skip_unless_required(str(exc))


@pytest.mark.slow  # compiles every kernel for every target: seconds
def test_compile_command_compiles_every_variant(nvrtc, capsys):
    assert compile_all() == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("ok", "FAILED"))]
    assert len(lines) == len(ARCHITECTURES) * len(DTYPES) * sum(len(names) for names in SOURCES.values())
    assert all(line.startswith("ok") and "registers=?" not in line for line in lines)


def test_compile_errors_are_reported(nvrtc):
    result = compile_cubin("extern \"C\" __global__ void broken() { undefined_name(); }", "broken.cu",
                           ["--gpu-architecture=sm_90"])
    assert not result.ok and "undefined_name" in result.log


COMPILE_ONE = textwrap.dedent("""
    import sys
    import numpy as np
    from rnn_gpu.kernels import SOURCE_FILE, define_options, kernel_source, nvrtc
    if sys.argv[1] == "without-the-fix":
        nvrtc.load_builtins_beside = lambda path: None
    result = nvrtc.compile_cubin(kernel_source(SOURCE_FILE), SOURCE_FILE,
                                 ["--gpu-architecture=sm_90", *define_options(np.dtype(np.float32), (1, 4))])
    print("ok" if result.ok else "FAILED " + result.log)
""")


@pytest.mark.slow  # a fresh Python process compiles a kernel
def test_compiles_when_libnvrtc_does_not_look_beside_itself_for_its_builtins(nvrtc, tmp_path):
    """As with nvidia-cuda-nvrtc 13.0: a libnvrtc whose search path does not
    reach the builtins library next to it. Made here from the installed one
    by pointing its $ORIGIN run path elsewhere (same length), nothing installed."""
    lib = library()._name
    folder = os.path.dirname(lib)
    builtins = [f for f in os.listdir(folder) if f.startswith("libnvrtc-builtins.so")]
    blob = Path(lib).read_bytes()
    if not builtins or b"$ORIGIN" not in blob:
        pytest.skip("this NVRTC has no separate builtins library found through $ORIGIN")
    (tmp_path / os.path.basename(lib)).write_bytes(blob.replace(b"$ORIGIN", b"/nowher"))
    for name in builtins:
        shutil.copy(os.path.join(folder, name), tmp_path / name)
    env = {**os.environ, "RNN_GPU_NVRTC": str(tmp_path / os.path.basename(lib)), "LD_LIBRARY_PATH": ""}

    def compile_with(mode):
        proc = subprocess.run([sys.executable, "-c", COMPILE_ONE, mode], capture_output=True, text=True, env=env)
        return proc.stdout + proc.stderr

    assert "builtins" in compile_with("without-the-fix")  # the copy reproduces the failure ...
    assert compile_with("with-the-fix").strip() == "ok"  # ... which loading the builtins first fixes
