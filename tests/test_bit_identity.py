"""With every setting added since a known commit off (their defaults), a
short fixed-seed run trains to exactly the parameters it trained to then:
the kernels, the numerics and every figure of that commit are unchanged,
bit for bit.

The golden hashes: SHA-256 (first 16 hex digits) of the final checkpoint's
parameters, sorted by name, each C-contiguous, concatenated. Computed at
commit 61e9e63 (`git log -1 --format=%h`) on the 2-core AMD EPYC
development machine, 2026-12-07, NumPy's OpenBLAS; the OpenCL ones per
OpenCL CPU runtime (Intel's and PoCL 3.1 round the kernels differently), so
a platform not in the table skips its case rather than guess.
"""
import hashlib
from pathlib import Path

import numpy as np
import pytest

import rnn_gpu
from rnn_gpu.checkpoint import load_checkpoint

# The corpus, generated here: no file of ../shared.
TEXT = "".join(chr(97 + (i * 7919 + i // 13) % 26) + (" " if i % 9 == 0 else "") for i in range(20000))
RUN = {"layers": 2, "hidden": 16, "batch": 4, "seq": 12, "steps": 20, "seed": 3, "eval_every": 10}
CASES = {"adam": {"optimizer": "adam", "dropout": 0.1}, "adagrad": {"optimizer": "adagrad", "dropout": 0.0}}

# Every setting added since 61e9e63, given explicitly at its default (off): the same runs, bit for bit.
OFF = {"dropout_masks": "step", "weight_drop": 0.0, "zoneout": 0.0, "residual": False, "init": "uniform",
       "init_scale": 1.0, "output_bias": "zero", "ar": 0.0, "tar": 0.0, "weight_decay": 0.0, "tie_weights": False}

GOLDEN = {  # (backend, dtype, case) -> hash, at commit 61e9e63
    ("numpy", "float64", "adam"): "c87d48a5bceb0490",
    ("numpy", "float64", "adagrad"): "079ac36e72e9c2a4",
    ("numpy", "float32", "adam"): "03f6621d7eb04a56",
    ("numpy", "float32", "adagrad"): "9defc743b3e21ce4",
}
GOLDEN_OPENCL = {  # OpenCL platform name -> case -> hash (float32, the kernels), at commit 61e9e63
    "Intel(R) OpenCL": {"adam": "55c4401d4f566749", "adagrad": "6fb11dfbf0242191"},
    "Portable Computing Language": {"adam": "0c9074826a0ba1be", "adagrad": "fa3e6ecdd29b86a7"},
}


def params_hash(params: dict) -> str:
    blob = b"".join(np.ascontiguousarray(params[k]).tobytes() for k in sorted(params))
    return hashlib.sha256(blob).hexdigest()[:16]


def trained_hash(tmp_path: Path, backend: str, dtype: str, case: str, **settings) -> str:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / f"run-{backend}-{dtype}-{case}-{len(settings)}"
    rnn_gpu.train(corpus, out, backend=backend, dtype=dtype, **RUN, **CASES[case], **settings)
    return params_hash(load_checkpoint(out).params)


@pytest.mark.parametrize("backend,dtype,case", list(GOLDEN))
def test_numpy_runs_are_bit_identical_to_the_golden(tmp_path, backend, dtype, case):
    assert trained_hash(tmp_path, backend, dtype, case) == GOLDEN[backend, dtype, case]
    assert trained_hash(tmp_path, backend, dtype, case, **OFF) == GOLDEN[backend, dtype, case]


@pytest.mark.parametrize("case", list(CASES))
def test_opencl_kernel_runs_are_bit_identical_to_the_golden(tmp_path, opencl, case):
    platform = opencl.device.platform.name.strip()
    if platform not in GOLDEN_OPENCL:
        pytest.skip(f"no golden hashes for the OpenCL platform {platform!r}")
    assert trained_hash(tmp_path, "opencl", "float32", case) == GOLDEN_OPENCL[platform][case]
    assert trained_hash(tmp_path, "opencl", "float32", case, **OFF) == GOLDEN_OPENCL[platform][case]
