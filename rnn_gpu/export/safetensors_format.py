"""The safetensors export, and reading it back: the parameters under their
own names (U (H, V), W, b, U2, W2, b2, ..., V, c) in the model's dtype, so a
round trip is bit for bit; the vocabulary and configuration in the string
metadata (`mapping.metadata`). Needs safetensors (`rnn_gpu[export]`),
imported here alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import Checkpoint
from ..errors import CheckpointError
from ..fileio import atomic_write
from ..layout import layers_in
from .mapping import check_params, metadata, read_metadata, require


def write_safetensors(ckpt: Checkpoint, output: Path) -> None:
    st = require("safetensors.numpy", "exporting to safetensors")
    tensors = {k: np.ascontiguousarray(v) for k, v in ckpt.params.items()}
    dtype = ckpt.params["W"].dtype
    data = st.save(tensors, metadata=metadata(ckpt, "safetensors", dtype))
    atomic_write(Path(output), lambda f: f.write(data))


def load_safetensors(path) -> Checkpoint:
    """The parameters, vocabulary and configuration of a safetensors export
    (no training state), every part checked: a CheckpointError naming the
    file and what is wrong for a damaged or foreign file."""
    p = Path(path)
    if not p.is_file():
        why = "is a directory" if p.is_dir() else "is not a regular file" if p.exists() else "no such file"
        raise CheckpointError(f"{p}: {why}, not a safetensors file")
    safetensors = require("safetensors", "reading safetensors")
    try:
        with safetensors.safe_open(str(p), framework="numpy") as f:
            meta = f.metadata()
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open has no __iter__)
    except (safetensors.SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{p}: not a readable safetensors file ({exc})") from None
    vocab, config, recorded = read_metadata(meta, p, "safetensors")
    params = check_params(arrays, len(vocab), p)
    V, H, L = len(vocab), params["W"].shape[0], layers_in(params)
    actual = {"vocab_size": V, "hidden_size": H, "layers": L}
    if recorded != actual:
        raise CheckpointError(f"{p}: its metadata says {recorded}, its parameters {actual}")
    return Checkpoint(params=params, vocab=vocab, config=config)
