"""Models that travel: a checkpoint exported to PyTorch, ONNX or
safetensors (docs/export.md), and a safetensors export read back.

    from rnn_gpu.export import export, load_safetensors
    export("runs/a", "onnx", "model.onnx")
    ckpt = load_safetensors(export("runs/a", "safetensors", "model.safetensors"))

Each format's library is optional and imported only when used: torch for
`torch` (`rnn_gpu[torch]`), onnx for `onnx` and safetensors for
`safetensors` (`rnn_gpu[export]`); a missing one is a UsageError naming the
extra. Every file is written atomically: an existing output is replaced only
by a complete new one.
"""
from __future__ import annotations

from pathlib import Path

from .mapping import FORMATS, SUFFIXES, check_format, check_output, is_safetensors, model_of, read_model, require
from .safetensors_format import load_safetensors

__all__ = ["FORMATS", "SUFFIXES", "export", "is_safetensors", "load_safetensors", "read_model"]

_LIBRARIES = {"torch": "torch", "onnx": "onnx", "safetensors": "safetensors.numpy"}


def export(source, format: str, output) -> Path:
    """Writes the model of `source` (a run directory: its checkpoint.npz,
    else best.npz; a checkpoint file; a safetensors export; or a
    `rnn_gpu.checkpoint.Checkpoint`) as `format` ("torch", "onnx" or
    "safetensors") to the file `output`; returns its path. Bad input
    (format, output, source) is a UsageError (a damaged checkpoint a
    CheckpointError), a missing library a UsageError naming the extra."""
    check_format(format)
    output = check_output(output, source)
    require(_LIBRARIES[format], f"exporting to {format}")
    ckpt = model_of(source)
    if format == "torch":
        from .torch_format import write_torch as write
    elif format == "onnx":
        from .onnx_format import write_onnx as write
    else:
        from .safetensors_format import write_safetensors as write
    write(ckpt, output)
    return output
