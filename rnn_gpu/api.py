"""The Python API: train, load and sample in a few lines.

    import rnn_gpu
    rnn_gpu.train("corpus.txt", "runs/a", hidden=128, steps=500, layers=2)
    model, vocab = rnn_gpu.load("runs/a")
    print(rnn_gpu.sample(model, vocab, length=200, prime="The "))

Everything raises `rnn_gpu.RnnGpuError` subclasses for bad input or a
failing machine, the same errors the CLI prints as `error:` lines.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .backends import get_backend
from .checkpoint import load_for_sampling
from .errors import UsageError
from .model import TextRNN
from .sample import sample
from .training import TrainConfig
from .training import train as _train

__all__ = ["load", "sample", "train"]


def train(corpus=None, out="runs/rnn_gpu", *, resume: bool = False, progress: bool = False, comm=None,
          **config) -> dict:
    """Trains on `corpus` (a path, several, or None for the embedded default)
    into the run directory `out`, with any `TrainConfig` field as a keyword
    (hidden=, layers=, steps=, lr=, ...). Returns the final metrics record."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise UsageError(f"unknown training setting {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise UsageError(f"out must be a run directory's path, got {out!r}")
    cfg = TrainConfig(**config)
    cfg.validate()
    return _train(cfg, corpus, Path(out), progress=progress, resume=resume, comm=comm)


def load(path, backend: str = "numpy"):
    """The model and vocabulary of a checkpoint (a .npz file, or a run
    directory: its checkpoint.npz, else best.npz). Returns (model, vocab);
    `model.vocab` is set too, so `model.sample(...)` needs nothing more."""
    ckpt = load_for_sampling(path)
    W = ckpt.params["W"]
    model = TextRNN(len(ckpt.vocab), W.shape[0], get_backend(backend), dtype=W.dtype, params=ckpt.params)
    model.vocab = ckpt.vocab
    return model, ckpt.vocab
