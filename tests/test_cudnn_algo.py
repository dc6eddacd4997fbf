"""PyTorch's choice of cuDNN RNN algorithm (rnn_gpu/bench/cudnn_algo.py)
against what PyTorch picked on an H200 (compute capability 9.0, 132
multiprocessors) for the recurrence rows of the GPU check, and each rule's
edges, written out from the rules' text case by case."""
from types import SimpleNamespace

import pytest

from rnn_gpu.bench.cudnn_algo import (
    PERSIST_STATIC,
    SMALL_H,
    STANDARD,
    cudnn_rnn_algo,
    cudnn_rnn_algos,
    torch_cudnn_algo,
)

H200 = {"capability": (9, 0), "multiprocessors": 132}
DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def algo(H, B, T, precision="fp32", device=H200, **call):
    return cudnn_rnn_algos(hidden=H, batch=B, seq=T, dtype=DTYPES.get(precision, precision), **device, **call)


def both(name):
    return {"forward": name, "backward": name}


@pytest.mark.parametrize("precision", list(DTYPES))
def test_the_h200_recurrence_rows(precision):
    """nn.RNN(H, H), one layer: SMALL_H at H=128 (T=64 and T=1024); at H=512,
    B=64 STANDARD, but PERSIST_STATIC in fp16; at H=1024, B=128 STANDARD in
    every precision (B >= 96 and H >= 896 rule PERSIST_STATIC out)."""
    assert algo(128, 64, 64, precision) == both(SMALL_H)
    assert algo(128, 64, 1024, precision) == both(SMALL_H)
    assert algo(512, 64, 64, precision) == both(PERSIST_STATIC if precision == "fp16" else STANDARD)
    assert algo(1024, 128, 64, precision) == both(STANDARD)
    assert algo(1024, 64, 64, precision) == both(PERSIST_STATIC if precision == "fp16" else STANDARD)


def test_small_h_limits_differ_forward_and_backward():
    assert algo(384, 64, 64) == {"forward": SMALL_H, "backward": STANDARD}
    assert algo(256, 64, 64) == both(SMALL_H)
    assert algo(385, 64, 64) == both(STANDARD)
    assert algo(384, 64, 64, "fp16") == {"forward": SMALL_H, "backward": PERSIST_STATIC}
    assert algo(192, 64, 64, mode="lstm") == {"forward": SMALL_H, "backward": STANDARD}
    assert algo(128, 64, 64, "float64") == both(STANDARD)  # never in double
    assert algo(128, 64, 64, device={"capability": (5, 2), "multiprocessors": 24}) == both(STANDARD)
    assert algo(128, 64, 64, device={"capability": (6, 0), "multiprocessors": 56}) == both(SMALL_H)


def test_persist_static_common_rules():
    assert algo(512, 64, 64, "fp16", layers=2) == both(STANDARD)
    assert algo(512, 64, 64, "fp16", input_size=65) == both(STANDARD)  # one-hot characters
    assert algo(512, 64, 64, "fp16", input_size=256) == both(PERSIST_STATIC)
    assert algo(640, 64, 64, "fp16") == both(PERSIST_STATIC)
    assert algo(520, 64, 64, "fp16") == both(STANDARD)  # not a multiple of 128
    assert algo(1152, 64, 64, "fp16") == both(STANDARD)  # above 1024
    assert algo(512, 64, 64, "fp16", bidirectional=True) == both(STANDARD)


def test_persist_static_device_rules():
    assert algo(512, 128, 64, "fp16") == both(PERSIST_STATIC)
    assert algo(768, 96, 64, "fp16") == both(PERSIST_STATIC)  # B >= 96 with H < 896
    assert algo(896, 96, 64, "fp16") == both(STANDARD)
    assert algo(896, 96, 64, "fp16", mode="lstm") == both(PERSIST_STATIC)  # the H limit is the plain RNN's
    assert algo(512, 64, 64, "fp16", mode="gru") == both(STANDARD)
    assert algo(512, 136, 64, "fp16") == both(STANDARD)
    assert algo(512, 60, 64, "fp16") == both(STANDARD)  # not a multiple of 8
    a100, a30, a40 = ({"capability": c, "multiprocessors": n} for c, n in (((8, 0), 108), ((8, 0), 56), ((8, 6), 84)))
    sm86_large = {"capability": (8, 6), "multiprocessors": 142}  # sm_86 is ruled out by its minor version alone
    assert algo(512, 64, 64, "fp16", a100) == both(PERSIST_STATIC)
    for device in (a30, a40, sm86_large, {"capability": (7, 5), "multiprocessors": 40}):
        assert algo(512, 64, 64, "fp16", device) == both(STANDARD)
    v100 = {"capability": (7, 0), "multiprocessors": 80}
    assert algo(512, 64, 40, "fp16", v100) == both(PERSIST_STATIC)
    assert algo(512, 64, 39, "fp16", v100) == both(PERSIST_STATIC)  # T >= 20 with B <= 96
    assert algo(512, 128, 39, "fp16", v100) == both(STANDARD)
    assert algo(512, 80, 64, "fp16", v100) == both(STANDARD)  # a multiple of 16 left out
    assert algo(512, 8, 10, "fp16", v100) == both(PERSIST_STATIC)
    assert algo(512, 8, 9, "fp16", v100) == both(STANDARD)
    assert algo(512, 24, 64, "fp16", v100) == both(STANDARD)  # a multiple of 8, not of 16


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        cudnn_rnn_algo(hidden=128, batch=64, seq=64, dtype="float32", mode="elman", **H200)


def test_the_label_reads_the_current_device():
    props = SimpleNamespace(major=9, minor=0, multi_processor_count=132)
    fake = SimpleNamespace(cuda=SimpleNamespace(current_device=lambda: 0, get_device_properties=lambda i: props))
    assert torch_cudnn_algo(fake, "cuda", "float16", 512, 64, 64) == both(PERSIST_STATIC)
    assert torch_cudnn_algo(fake, "cuda", "float16", 512, 64, 64, layers=1, input_size=65) == both(STANDARD)
    assert torch_cudnn_algo(fake, "cpu", "float16", 512, 64, 64) is None
