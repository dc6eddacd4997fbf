"""The kernels compile with NVRTC, CuPy's compiler, for the GPUs we target,
on a machine without a GPU."""
import pytest
from conftest import skip_unless_required

from rnn_gpu.kernels import SOURCES
from rnn_gpu.kernels.__main__ import ARCHITECTURES, DTYPES, compile_all
from rnn_gpu.kernels.nvrtc import NvrtcUnavailable, compile_cubin, version


@pytest.fixture(scope="module")
def nvrtc():
    try:
        return version()
    except NvrtcUnavailable as exc:
        skip_unless_required(str(exc))


def test_compile_command_compiles_every_variant(nvrtc, capsys):
    assert compile_all() == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("ok", "FAILED"))]
    assert len(lines) == len(ARCHITECTURES) * len(DTYPES) * sum(len(names) for names in SOURCES.values())
    assert all(line.startswith("ok") and "registers=?" not in line for line in lines)


def test_compile_errors_are_reported(nvrtc):
    result = compile_cubin("extern \"C\" __global__ void broken() { undefined_name(); }", "broken.cu",
                           ["--gpu-architecture=sm_90"])
    assert not result.ok and "undefined_name" in result.log
