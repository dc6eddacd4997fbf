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
from ..data.vocab import Vocab
from ..errors import CheckpointError
from ..fileio import atomic_write
from .mapping import FORMAT_TAGS, bpe_vocab_of_record, params_from_torch, require, sizes, torch_state_dict, vocab_record


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


def read_torch(path) -> tuple[dict, Vocab | None]:
    """(rnn_gpu's parameters, the vocabulary or None) of a PyTorch export, or
    of a bare state dict of the same modules (`mapping.params_from_torch`).
    Read with weights_only: a file that would need to run code is refused."""
    torch = require("torch", "reading a PyTorch file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises what its unpickler and zip reader raise)
        raise CheckpointError(f"{path}: not a PyTorch file of tensors ({type(exc).__name__}: {exc})") from None
    exported = isinstance(content, dict) and content.get("format") == FORMAT_TAGS["torch"]
    state = content.get("state_dict") if exported else content
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    params = params_from_torch({k: v.detach().cpu().numpy() for k, v in state.items()}, path)
    return params, vocab_of(content.get("vocab"), path) if exported else None


def vocab_of(record, where) -> Vocab:
    """The vocabulary a torch export keeps (`vocab_record`)."""
    if isinstance(record, dict) and record.get("kind") == "bpe":
        return bpe_vocab_of_record(record, where)  # its tokenizer's JSON, checked
    try:
        vocab = Vocab(record["kind"], tuple(record["symbols"]))
        valid = vocab.valid
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise CheckpointError(f"{where}: damaged vocabulary")
    return vocab
