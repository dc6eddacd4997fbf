"""The Python API: train, load and sample in a few lines.

    import rnn_gpu
    rnn_gpu.train("corpus.txt", "runs/a", hidden=128, steps=500, layers=2)
    model, vocab = rnn_gpu.load("runs/a")
    print(rnn_gpu.sample(model, vocab, length=200, prime="The "))
    rnn_gpu.inspect("runs/a")  # runs/a/inspect.json and .png: the gradient against distance

Every door checks what it is given as the command line does: bad input is
an `rnn_gpu.UsageError` that names the keyword, a failing machine an
`rnn_gpu.EnvironmentFailure`; nothing but `rnn_gpu.RnnGpuError` subclasses
escapes.
"""
from __future__ import annotations

import dataclasses

from .backends import get_backend
from .checks import flag_value, path_value, paths_value
from .errors import UsageError
from .export import read_model
from .inspection import inspect as _inspect
from .model import TextRNN, forward_settings
from .sample import sample
from .training import TrainConfig
from .training import train as _train
from .training.recipes import recipe_settings

__all__ = ["inspect", "load", "sample", "train"]


def train(corpus=None, out="runs/rnn_gpu", *, resume: bool = False, progress: bool = False, comm=None,
          recipe: str | None = None, **config) -> dict:
    """Trains on `corpus` (a path, several, or None for the embedded default)
    into the run directory `out`, with any `TrainConfig` field as a keyword
    (hidden=, layers=, steps=, lr=, ...), over a named recipe's (recipe=,
    training/recipes.py) where given. Returns the final metrics record."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise UsageError(f"unknown training setting {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    corpus = None if corpus is None else [str(p) for p in paths_value(corpus, "corpus")]
    out = path_value(out, "out")
    resume, progress = flag_value(resume, "resume"), flag_value(progress, "progress")
    if comm is not None and not all(hasattr(comm, a) for a in ("rank", "size", "allreduce_mean_", "agree")):
        raise UsageError(f"comm= must be None or an rnn_gpu.parallel communicator, got {type(comm).__name__}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"out={out} exists and is not a directory")
    cfg = TrainConfig(**recipe_settings(recipe, config))
    cfg.validate()
    return _train(cfg, corpus, out, progress=progress, resume=resume, comm=comm)


def load(path, backend: str = "numpy"):
    """The model and vocabulary of a checkpoint (a .npz file, or a run
    directory: its checkpoint.npz, else best.npz) or of a safetensors export.
    Returns (model, vocab); `model.vocab` is set too, so `model.sample(...)`
    needs nothing more."""
    ckpt = read_model(path_value(path, "path"))
    W = ckpt.params["W"]
    model = TextRNN(len(ckpt.vocab), W.shape[0], get_backend(backend), dtype=W.dtype, params=ckpt.params,
                    **forward_settings(ckpt.config))  # a residual or zoneout model samples as it trained
    model.vocab = ckpt.vocab
    return model, ckpt.vocab


def inspect(path, corpus=None, seq=None, output=None) -> dict:
    """Measures the vanishing gradient of the model of `path` (a run
    directory, a .npz checkpoint or a .safetensors export) on held-out
    windows of `seq` steps (default the run's) of `corpus` (default the
    run's own): per layer, ||dL_T/dh_t|| against the distance T - t, the
    fraction of saturated units (|h| > 0.99) and the largest singular value
    of W. Writes OUTPUT.json and OUTPUT.png (default: the run directory's
    inspect.json and inspect.png) and returns what the JSON holds."""
    return _inspect(path, corpus=corpus, seq=seq, output=output)
