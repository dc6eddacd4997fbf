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

import numpy as np

from ..checkpoint import Checkpoint, load_for_sampling
from ..data.vocab import Vocab
from ..errors import CheckpointError, UsageError
from ..fileio import is_regular
from .mapping import FORMATS, SUFFIXES, check_format, check_output, check_params, is_safetensors, require
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


def read_model(path) -> Checkpoint:
    """The model of a path: a safetensors export (a file that starts as one,
    or any file named *.safetensors: `load_safetensors`), else
    a checkpoint or run directory as `rnn_gpu.checkpoint.load_for_sampling` reads it."""
    if is_safetensors(path) or (Path(path).suffix == ".safetensors" and Path(path).is_file()):
        return load_safetensors(path)
    return load_for_sampling(path)


def model_of(source) -> Checkpoint:
    """A `Checkpoint`, checked; or one read from a path (`read_model`)."""
    if isinstance(source, Checkpoint):
        if not isinstance(source.vocab, Vocab) or not source.vocab.valid or not isinstance(source.config, dict):
            raise CheckpointError("the checkpoint to export has a damaged vocabulary or configuration")
        params = {k: np.asarray(v) for k, v in source.params.items()}
        check_params(params, len(source.vocab), "the checkpoint to export")
        return Checkpoint(params=params, vocab=source.vocab, config=source.config)
    if not isinstance(source, (str, Path)):
        raise UsageError(f"export takes a run directory, a checkpoint file or a Checkpoint, "
                         f"not {type(source).__name__}")
    return read_model(source)


def initial_weights(path, vocab: Vocab) -> dict:
    """Starting weights for a run on `vocab` (`train --init-from`): a PyTorch
    export or a state dict of its modules, a safetensors export, or a
    checkpoint (run directory or .npz). A file that keeps its vocabulary must
    keep this one; one without (a bare state dict) must have its size."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"init_from={p}: no such file")
    if not p.is_dir() and not is_regular(p):
        raise UsageError(f"init_from={p}: not a regular file")
    if p.is_dir() or p.suffix in (".npz", ".safetensors") or is_safetensors(p):
        ckpt = read_model(p)
        params, kept = ckpt.params, ckpt.vocab
    else:
        from .torch_format import read_torch

        params, kept = read_torch(p)
    if kept is not None and kept != vocab:
        raise UsageError(f"init_from={p} is a model of another vocabulary ({kept.kind}, {len(kept)} symbols; the "
                         f"corpus's: {vocab.kind}, {len(vocab)})")
    if params["V"].shape[0] != len(vocab):
        raise UsageError(f"init_from={p} predicts {params['V'].shape[0]} symbols; the corpus has {len(vocab)}")
    return params
