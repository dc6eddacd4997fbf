"""`rnn-gpu inspect`: the vanishing gradient of a trained (or untrained)
model, measured on held-out windows, written as PREFIX.json and PREFIX.png.

For each layer: ||dL_T/dh_t|| against the distance T - t (the gradient of
the loss at a window's last step with respect to each earlier state,
`measures.last_step_gradients`), averaged over the streams and windows; the
fraction of saturated units (|h| > 0.99) over those windows; and the
largest singular value of its recurrent matrix W. The windows are the
first MAX_WINDOWS of the validation part's evaluation windows, in the
evaluation's order, the hidden state carried from one to the next as
evaluation carries it."""
from __future__ import annotations

import glob
import json
import math
from pathlib import Path

import numpy as np

from ..checkpoint import BEST_FILENAME, FILENAME, Checkpoint
from ..checks import path_value, paths_value
from ..data.corpus import load_corpus
from ..data.streams import check_ids, evaluation_positions, evaluation_streams
from ..errors import CheckpointError, CorpusError, UsageError
from ..export import is_safetensors, read_model
from ..fileio import atomic_write
from ..layout import layer_names, layers_in
from ..settings import declared, problem
from ..training.config import TrainConfig, check_memory
from . import measures

MAX_WINDOWS = 8  # evaluation windows measured: enough for a smooth mean, cheap in float64
DEFAULT_PREFIX = "inspect"
# What of the run's configuration inspect reads, and what each means when the checkpoint lacks it.
RUN_SETTINGS = ("seq", "batch", "val_fraction", "val_chars", "vocab_size", "include", "exclude")
# Settings that change the recurrence itself: a run with one of them on is another model than `measures` computes.
OTHER_RECURRENCES = ("residual", "zoneout")


def inspect(path, corpus=None, seq=None, output=None) -> dict:
    """Measures the model of `path` (a run directory: its checkpoint.npz,
    else best.npz; a .npz checkpoint; a .safetensors export) on held-out
    windows of `corpus` (a path or several; default the run's own, as it
    trained: its `corpus`, or None for the embedded default) of `seq` steps
    (default the run's), and writes OUTPUT.json and OUTPUT.png (`output`: a
    prefix, or a directory to write inspect.* into; default the run
    directory's `inspect`). Returns what OUTPUT.json holds. Bad input is a
    UsageError naming the keyword; a checkpoint that cannot be read a
    CheckpointError; a corpus that does not fit the model a CorpusError."""
    path = path_value(path, "path")
    corpus = None if corpus is None else [str(p) for p in paths_value(corpus, "corpus")]
    if seq is not None and (why := problem(declared(TrainConfig)["seq"], seq)):
        raise UsageError(why)
    prefix = output_prefix(path, None if output is None else path_value(output, "output"))
    plt = pyplot()
    ckpt = read_model(path)
    run = run_settings(ckpt, path)
    seq = run["seq"] if seq is None else int(seq)
    params = checked_params(ckpt, path, run["batch"], seq)
    L, H, V = layers_in(params), params["W"].shape[0], params["V"].shape[0]
    data, spec, source, data_file = held_out(ckpt, run, corpus, path)
    windows = full_windows(len(data), run["batch"], seq, run["val_chars"], path)
    sums, saturation, losses, streams = measure_windows(params, data, windows, data_file)
    report = {
        "format": "rnn_gpu.inspect/1",
        "path": str(checkpoint_file(path)),
        "output": str(prefix),
        "step": None if is_export(path) else int(ckpt.step),  # an export keeps no step
        "seq": seq,
        "windows": len(windows),
        "streams": streams,
        "corpus": spec,
        "corpus_description": source,
        "validation_symbols": len(data),
        "hidden": H,
        "vocab_size": V,
        "saturated_above": measures.SATURATED,
        "last_step_loss": losses,
        "layers": [{"layer": k + 1,
                    "grad_norm_by_distance": [finite(x) for x in sums[k]],
                    "saturation": float(saturation[k]),
                    "largest_singular_value": float(np.linalg.norm(params[layer_names(k + 1)[1]], 2))}
                   for k in range(L)],
    }
    text = json.dumps(report, indent=1, allow_nan=False) + "\n"
    atomic_write(prefix.with_name(prefix.name + ".json"), lambda f: f.write(text.encode("utf-8")))
    draw(plt, report, prefix.with_name(prefix.name + ".png"))
    return report


def checked_params(ckpt, path, batch: int, seq: int) -> dict:
    """The model's parameters in float64 on the host: finite, and of a size the measurement fits in memory."""
    params = measures.host_params(ckpt.params)
    if not all(np.isfinite(v).all() for v in params.values()):
        raise CheckpointError(f"{path}: the model's parameters are not all finite")
    check_memory(params["W"].shape[0], layers_in(params), batch, seq, "float64", params["V"].shape[0])
    return params


def measure_windows(params: dict, data, windows: list, data_file: str) -> tuple:
    """Over the windows in order, the hidden state carried: per layer the
    mean gradient norm by distance and the saturated fraction, the mean loss
    of the last steps, and the streams."""
    L, H, V = layers_in(params), params["W"].shape[0], params["V"].shape[0]
    sums = [np.zeros(windows[0].shape[0] - 1) for _ in range(L)]
    saturated, units, losses, h = np.zeros(L), 0, [], None
    for where in windows:
        window = np.asarray(data[where], dtype=np.int64)
        check_ids(window, V, where, "validation", data_file)
        if h is None:
            h = np.zeros((L, window.shape[1], H))
        loss, grads, states = measures.last_step_gradients(params, window[:-1], window[-1], h)
        for k in range(L):
            sums[k] += measures.norms_by_distance(grads[k]).sum(axis=1)
            saturated[k] += np.count_nonzero(np.abs(states[k]) > measures.SATURATED)
        units += states[0].size
        losses.append(loss)
        h = np.stack([s[-1] for s in states])
    count = len(windows) * h.shape[1]
    return ([s / count for s in sums], saturated / units, float(np.mean(np.concatenate(losses))), h.shape[1])


def finite(x) -> float | None:
    """A number JSON can hold: an overflow is None (and left out of the figure)."""
    return float(x) if math.isfinite(x) else None


def output_prefix(path: Path, output: Path | None) -> Path:
    """PREFIX of PREFIX.json and PREFIX.png: given (a .json or .png name
    names the same prefix; a directory: DIR/inspect), or beside the
    checkpoint; its directory must exist."""
    if output is None:
        return (path if path.is_dir() else path.parent) / DEFAULT_PREFIX
    if output.is_dir():
        return output / DEFAULT_PREFIX
    if output.suffix.lower() in (".json", ".png"):
        output = output.with_suffix("")
    if not output.parent.is_dir():
        why = "is not a directory" if output.parent.exists() else "does not exist"
        raise UsageError(f"output={output}: its directory {output.parent} {why}")
    return output


def is_export(path: Path) -> bool:
    """Whether `read_model` reads `path` as a safetensors export."""
    return path.is_file() and (is_safetensors(path) or path.suffix == ".safetensors")


def checkpoint_file(path: Path) -> Path:
    """The file `read_model` reads for `path`."""
    if path.is_dir():
        return path / (FILENAME if (path / FILENAME).exists() or not (path / BEST_FILENAME).exists()
                       else BEST_FILENAME)
    return path


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("inspect draws its figure with matplotlib: pip install 'rnn_gpu[plot]'") from None
    return plt


def run_settings(ckpt: Checkpoint, path: Path) -> dict:
    """What the run's configuration says of its corpus and windows, each value checked."""
    config, fields, run = ckpt.config, declared(TrainConfig), {}
    for name in OTHER_RECURRENCES:
        if config.get(name) not in (None, False, 0):
            raise UsageError(f"{path} was trained with {name}={config[name]!r}; inspect measures the plain "
                             "recurrence h_t = tanh(U x_t + W h_(t-1) + b) only")
    for name in RUN_SETTINGS:
        value = config.get(name, fields[name].default)
        if isinstance(value, list) and name in ("include", "exclude"):
            value = tuple(value)
        why = problem(fields[name], value)
        if why:
            raise CheckpointError(f"{path}: damaged configuration: {why}")
        run[name] = value
    return run


def held_out(ckpt: Checkpoint, run: dict, corpus, path: Path):
    """(the validation part's ids, the corpus spec measured, its description, its data file):
    the given corpus or the run's, split as the run split it, in the model's vocabulary."""
    if corpus is None:
        if "corpus" not in ckpt.config:
            raise UsageError(f"{path} does not say which corpus it trained on; pass corpus=")
        corpus = ckpt.config["corpus"]
        if corpus is not None and (not isinstance(corpus, list) or not corpus
                                   or not all(isinstance(s, str) and s for s in corpus)):
            raise CheckpointError(f"{path}: damaged configuration: corpus={corpus!r}")
        for spec in corpus or ():
            if not Path(spec).exists() and not glob.has_magic(spec):
                raise CorpusError(f"the run's corpus {spec} is gone; pass corpus= to inspect on another")
    else:
        for spec in corpus:
            if not Path(spec).exists() and not glob.has_magic(spec):
                raise CorpusError(f"corpus={spec}: not found")
    if run["val_fraction"] == 0:
        raise UsageError(f"{path} was trained with val_fraction=0: no held-out part to inspect on")
    anchor = path if path.is_dir() else path.parent
    loaded = load_corpus(corpus, ckpt.vocab.kind, run["val_fraction"], spare_cache=anchor.parent / ".rnn_gpu-cache",
                         include=run["include"], exclude=run["exclude"], vocab_size=run["vocab_size"])
    if loaded.vocab != ckpt.vocab:
        raise CorpusError(f"corpus={' '.join(corpus) if corpus else '(the embedded default)'} does not fit the "
                          f"model: its vocabulary ({loaded.vocab.kind}, {len(loaded.vocab)} symbols) is not the "
                          f"model's ({ckpt.vocab.kind}, {len(ckpt.vocab)})")
    return loaded.val, corpus, loaded.source, loaded.data_file


def full_windows(length: int, batch: int, seq: int, val_chars, path: Path) -> list[np.ndarray]:
    """The first MAX_WINDOWS evaluation windows that have all `seq` steps."""
    windows = []
    for where in evaluation_positions(length, batch, seq, val_chars):
        if where.shape[0] != seq + 1 or len(windows) == MAX_WINDOWS:
            break
        windows.append(where)
    if not windows:
        streams, _, stream_len = evaluation_streams(length, batch, seq, val_chars)
        raise UsageError(f"seq={seq} is longer than the validation part allows ({length} symbols in {streams} "
                         f"stream(s) of {stream_len}: at most seq={max(stream_len - 1, 0)}); pass a smaller seq=")
    return windows


def draw(plt, report: dict, output: Path) -> None:
    """Log-scale gradient norm against distance, one line per layer."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for layer in report["layers"]:
        pairs = [(d, g) for d, g in enumerate(layer["grad_norm_by_distance"]) if g is not None and g > 0]
        if pairs:
            ax.plot(*zip(*pairs, strict=True), linewidth=1.3,
                    label=f"layer {layer['layer']}: sigma_max(W) {layer['largest_singular_value']:.3g}, "
                          f"saturated {layer['saturation']:.1%}")
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (steps back from the last step)")
    ax.set_ylabel("||dL_T / dh_t||")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    step = "" if report["step"] is None else f"step {report['step']}, "
    ax.set_title(f"{report['path']}: {step}seq {report['seq']}, "
                 f"{report['windows']} windows x {report['streams']} streams", fontsize=8)
    fig.tight_layout()
    try:
        atomic_write(output, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
