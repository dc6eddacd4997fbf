"""The PyTorch export: one `torch.save` file of plain tensors, dicts, lists,
strings and integers, so `torch.load(f, weights_only=True)` reads it:

    {"format": "rnn_gpu.torch/1",
     "state_dict": the state dict of ModuleDict(embedding=nn.Embedding(V, H),
                   rnn=nn.RNN(H, H, num_layers=L), linear=nn.Linear(H, V)), float32,
     "vocab": {"kind": ..., "symbols": [...], "tokenizer": ... (words only)},
     "config": the training configuration as JSON text,
     "vocab_size": V, "hidden_size": H, "layers": L}

The parameters map as `mapping` says (docs/export.md). Needs torch
(`rnn_gpu[torch]`), imported here alone.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import Checkpoint
from ..fileio import atomic_write
from .mapping import FORMAT_TAGS, require, sizes, torch_state_dict, vocab_record


def torch_export(ckpt: Checkpoint) -> dict:
    """What the file holds (torch tensors in `state_dict`)."""
    torch = require("torch", "exporting to torch")
    V, H, L = sizes(ckpt)
    state = {k: torch.from_numpy(v) for k, v in torch_state_dict(ckpt.params).items()}
    return {"format": FORMAT_TAGS["torch"], "state_dict": state, "vocab": vocab_record(ckpt.vocab),
            "config": json.dumps(ckpt.config, sort_keys=True, default=str), "vocab_size": V, "hidden_size": H,
            "layers": L}


def write_torch(ckpt: Checkpoint, output: Path) -> None:
    torch = require("torch", "exporting to torch")
    content = torch_export(ckpt)
    atomic_write(Path(output), lambda f: torch.save(content, f))
