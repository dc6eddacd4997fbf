"""Which cuDNN RNN algorithm PyTorch picks for an nn.RNN call, so that each
PyTorch baseline row says what it timed: SMALL_H
(CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H), PERSIST_STATIC or STANDARD.

The rules are PyTorch's `get_algo` with `use_rnn_persist_small_h`,
`use_persist_common_heuristics` and `use_persist_device_heuristics` in
aten/src/ATen/native/cudnn/RNN.cpp, as read at pytorch/pytorch commit
00fc08aa616fbdec70496aebee034ac90b083ff4 (main with the per-operation TF32
switch, `allowTF32CuDNN(Float32Op::RNN)`). PyTorch decides separately for the
forward and the backward call, for unpacked inputs (ours always are) and
without projections (nn.RNN has none). TF32 does not enter: float32 is
float32 to these rules, and bfloat16 is not half.
"""
from __future__ import annotations

SMALL_H, PERSIST_STATIC, STANDARD = "SMALL_H", "PERSIST_STATIC", "STANDARD"
MODES = ("tanh", "relu", "lstm", "gru")

# use_rnn_persist_small_h: the largest hidden size, by (forward, plain RNN or gated)
SMALL_H_LIMITS = {(True, False): 384, (True, True): 192, (False, False): 256, (False, True): 128}


def small_h_fits(mode: str, hidden: int, capability: tuple[int, int], forward: bool) -> bool:
    """use_rnn_persist_small_h: compute capability 6 and later, small H."""
    return capability[0] >= 6 and hidden <= SMALL_H_LIMITS[(forward, mode in ("lstm", "gru"))]


def persist_common(layers: int, hidden: int, input_size: int, bidirectional: bool) -> bool:
    """use_persist_common_heuristics: one layer, one direction, H and the input multiples of 128, H <= 1024."""
    return layers == 1 and not bidirectional and hidden <= 1024 and hidden % 128 == 0 and input_size % 128 == 0


def persist_device(mode: str, hidden: int, batch: int, seq: int, capability: tuple[int, int],
                   multiprocessors: int) -> bool:
    """use_persist_device_heuristics: per architecture, batch and sequence limits."""
    major, minor = capability
    if major == 7:
        if minor == 5:  # Turing: never
            return False
        batch_ok = (batch % 16 == 0 and batch not in (80, 112)) or batch == 8
        return batch_ok and ((seq >= 40 and batch <= 128) or (seq >= 20 and batch <= 96)
                             or (seq >= 10 and batch <= 32))
    if major >= 8 and multiprocessors >= 98:  # fewer multiprocessors (A30): never
        if minor == 6 or mode == "gru":  # sm_86 (A40): never; GRU: never
            return False
        if mode == "lstm":
            return batch % 8 == 0 and batch <= 128
        return batch % 8 == 0 and batch <= 128 and (batch < 96 or hidden < 896)
    return False


def cudnn_rnn_algo(*, hidden: int, batch: int, seq: int, dtype: str, capability: tuple[int, int],
                   multiprocessors: int, forward: bool = True, mode: str = "tanh", layers: int = 1,
                   input_size: int | None = None, bidirectional: bool = False) -> str:
    """The algorithm of one call (forward, or backward with forward=False).
    `dtype`: the tensors' "float32", "float16", "bfloat16" or "float64";
    `input_size`: nn.RNN's, H unless given."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    input_size = hidden if input_size is None else input_size
    if dtype != "float64" and small_h_fits(mode, hidden, capability, forward):
        return SMALL_H
    if dtype == "float16" and persist_common(layers, hidden, input_size, bidirectional) and \
            persist_device(mode, hidden, batch, seq, capability, multiprocessors):
        return PERSIST_STATIC
    return STANDARD


def cudnn_rnn_algos(**call) -> dict:
    """{"forward": ..., "backward": ...} for the keyword arguments of cudnn_rnn_algo (forward left out)."""
    return {"forward": cudnn_rnn_algo(**call, forward=True), "backward": cudnn_rnn_algo(**call, forward=False)}


def torch_cudnn_algo(torch, device: str, dtype: str, hidden: int, batch: int, seq: int, layers: int = 1,
                     input_size: int | None = None) -> dict | None:
    """The label of one PyTorch baseline (nn.RNN, tanh) on the current CUDA
    device, from its properties; None on the CPU, where cuDNN is not used."""
    if device != "cuda":
        return None
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return cudnn_rnn_algos(hidden=hidden, batch=batch, seq=seq, dtype=dtype,
                           capability=(props.major, props.minor), multiprocessors=props.multi_processor_count,
                           layers=layers, input_size=input_size)
