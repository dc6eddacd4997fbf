"""Checkpoints: one .npz of plain NumPy arrays, written atomically.

Keys: the parameters (`U`, `W`, `V`, `b`, `c`, and `U2`, `W2`, `b2`, ... for
deeper layers); `vocab_kind` and `vocab_symbols` (integers; for words JSON
text, with `vocab_tokenizer`; for bpe the tokenizer's JSON as `tokenizers`
wrote it, with `vocab_tokenizer` and `vocab_tokenizers_version`, the
library's version that saved it); `config` (JSON text);
`format`; and the training state (`step`, `position`, `h`, `opt.*`,
`elapsed_s`, `cpu_threads`, `kernel_choices`) for resuming. `h` is (B, H)
for one layer and (L, B, H) for more. No pickles, so a checkpoint from a GPU run loads
anywhere NumPy does. Dropout masks follow from the seed and the step
(rnn_gpu/dropout.py), so nothing of them is saved; the `rng_state` of
checkpoints from versions that drew them from a generator is ignored.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import bpe, words
from .data.vocab import Vocab
from .errors import CheckpointError
from .fileio import atomic_write, is_regular
from .layout import PARAM_NAMES, layers_in, param_shapes

FORMAT = "rnn_gpu.checkpoint/1"
FILENAME = "checkpoint.npz"  # the latest
BEST_FILENAME = "best.npz"  # the best by validation loss


@dataclass
class Checkpoint:
    params: dict  # name -> np.ndarray
    vocab: Vocab
    config: dict
    step: int = 0
    position: int = 0
    h: np.ndarray | None = None
    optimizer_state: dict = field(default_factory=dict)
    best_val_loss: float | None = None
    elapsed_s: float = 0.0  # training time of the run so far
    cpu_threads: list | None = None  # the backend's measured thread choices (backend.threads_chosen)
    kernel_choices: list | None = None  # the kernel autotuner's launch plans (backend.kernel_choices)


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    arrays = {k: np.asarray(v) for k, v in ckpt.params.items()}
    arrays.update(
        format=np.array(FORMAT),
        vocab_kind=np.array(ckpt.vocab.kind),
        vocab_symbols=ckpt.vocab.stored_symbols(),
        config=np.array(json.dumps(ckpt.config, sort_keys=True)),
        step=np.array(ckpt.step, dtype=np.int64),
        position=np.array(ckpt.position, dtype=np.int64),
        elapsed_s=np.array(ckpt.elapsed_s, dtype=np.float64),
    )
    if ckpt.vocab.kind == "words":
        arrays["vocab_tokenizer"] = np.array(words.TOKENIZER)
    if ckpt.vocab.kind == "bpe":
        arrays["vocab_tokenizer"] = np.array(bpe.TOKENIZER)
        arrays["vocab_tokenizers_version"] = np.array(bpe.library_version())
    if ckpt.cpu_threads:
        arrays["cpu_threads"] = np.array(json.dumps(ckpt.cpu_threads))
    if ckpt.kernel_choices:
        arrays["kernel_choices"] = np.array(json.dumps(ckpt.kernel_choices))
    if ckpt.h is not None:
        arrays["h"] = np.asarray(ckpt.h)
    if ckpt.best_val_loss is not None:
        arrays["best_val_loss"] = np.array(ckpt.best_val_loss)
    arrays.update({f"opt.{k}": np.asarray(v) for k, v in ckpt.optimizer_state.items()})
    atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def resolve_path(path) -> Path:
    """A checkpoint file, or a run directory holding checkpoint.npz."""
    p = Path(path)
    return p / FILENAME if p.is_dir() else p


def load_for_sampling(path) -> Checkpoint:
    """A checkpoint file, or a run directory's checkpoint.npz, else its best.npz."""
    p = Path(path)
    if p.is_dir() and not (p / FILENAME).exists() and (p / BEST_FILENAME).exists():
        return load_checkpoint(p / BEST_FILENAME)
    return load_checkpoint(p)


def load_checkpoint(path) -> Checkpoint:
    p = resolve_path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not is_regular(p):
        raise CheckpointError(f"{p}: not a regular file, so not a checkpoint")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(f"{p}: not an rnn_gpu checkpoint (not a .npz archive)")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"{p}: not a readable checkpoint ({exc})") from None
    fmt = arrays.get("format")
    if fmt is None or fmt.shape != () or str(fmt.item()) != FORMAT:
        raise CheckpointError(f"{p}: not an rnn_gpu checkpoint (no '{FORMAT}' format tag)")
    try:
        return _from_arrays(arrays, p)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{p}: damaged checkpoint ({type(exc).__name__}: {exc})") from None


def _from_arrays(arrays: dict, p: Path) -> Checkpoint:
    missing = [k for k in (*PARAM_NAMES, "vocab_kind", "vocab_symbols", "config") if k not in arrays]
    if missing:
        raise CheckpointError(f"{p}: checkpoint is missing {', '.join(missing)}")
    config = json.loads(arrays["config"].item())
    kind = str(arrays["vocab_kind"].item())
    vocab = bpe_vocab(arrays, p) if kind == "bpe" else Vocab.from_stored(kind, arrays["vocab_symbols"])
    if not isinstance(config, dict) or not vocab.valid:
        raise CheckpointError(f"{p}: damaged configuration or vocabulary")
    tokenizer = str(arrays["vocab_tokenizer"].item()) if "vocab_tokenizer" in arrays else None
    if vocab.kind == "words" and tokenizer != words.TOKENIZER:
        raise CheckpointError(f"{p}: its word vocabulary is of tokenizer {tokenizer}, not this version's "
                              f"{words.TOKENIZER}")
    if vocab.kind == "bpe" and np.ndim(arrays["V"]) == 2 and arrays["V"].shape[0] != len(vocab):
        raise CheckpointError(f"{p}: its BPE tokenizer has {len(vocab)} tokens but the model predicts "
                              f"{arrays['V'].shape[0]}")
    names = param_shapes(len(vocab), 1, layers_in(arrays)).keys()
    params = {k: arrays[k] for k in names}
    _check_shapes(params, len(vocab), p)
    cpu_threads = json.loads(arrays["cpu_threads"].item()) if "cpu_threads" in arrays else None
    kernel_choices = json.loads(arrays["kernel_choices"].item()) if "kernel_choices" in arrays else None
    return Checkpoint(
        params=params,
        vocab=vocab,
        config=config,
        step=int(arrays.get("step", 0)),
        position=int(arrays.get("position", 0)),
        h=arrays.get("h"),
        optimizer_state={k[4:]: v for k, v in arrays.items() if k.startswith("opt.")},
        best_val_loss=float(arrays["best_val_loss"]) if "best_val_loss" in arrays else None,
        elapsed_s=float(arrays.get("elapsed_s", 0.0)),
        cpu_threads=cpu_threads if isinstance(cpu_threads, list) else None,
        kernel_choices=kernel_choices if isinstance(kernel_choices, list) else None,
    )


def bpe_vocab(arrays: dict, p: Path) -> Vocab:
    """A checkpoint's BPE vocabulary, its tokenizer checked (bpe.check): a
    CheckpointError naming the file, or a UsageError without the library."""
    tag = str(arrays["vocab_tokenizer"].item()) if "vocab_tokenizer" in arrays else None
    if tag != bpe.TOKENIZER:
        raise CheckpointError(f"{p}: its BPE vocabulary is of tokenizer {tag}, not this version's {bpe.TOKENIZER}")
    bpe.library(f"{p}: its BPE vocabulary")
    stored, version = arrays["vocab_symbols"], arrays.get("vocab_tokenizers_version")
    version = str(version.item()) if version is not None and version.shape == () else None
    try:
        if stored.shape != () or stored.dtype.kind != "U":
            raise ValueError(f"a {stored.dtype} array of shape {stored.shape}, not one string")
        return Vocab.from_bpe(str(stored.item()), version)
    except ValueError as exc:
        raise CheckpointError(f"{p}: its BPE tokenizer (vocab_symbols) is damaged or unreadable: {exc}") from None


def _check_shapes(params: dict, vocab_size: int, p: Path) -> None:
    H = params["W"].shape[0] if params["W"].ndim == 2 else -1
    for k, shape in param_shapes(vocab_size, H, layers_in(params)).items():
        a = params[k]
        if a.shape != shape or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise CheckpointError(
                f"{p}: parameter {k} has shape {a.shape} and dtype {a.dtype}; expected finite floats of shape {shape}"
            )
