"""What every export format shares: the model to export (from a run
directory, a checkpoint or a `Checkpoint`), the output path's checks, the
optional libraries, the vocabulary and configuration as strings, and the one
mapping of rnn_gpu's parameters onto the standard RNN's (docs/export.md):

    embedding      E = U^T (V, H): layer 1's input is E[x_t] = U[:, x_t]
    layer k = 1:   input weights I (H, H), recurrent W, input bias b, recurrent bias 0
    layer k >= 2:  input weights Uk,       recurrent Wk, input bias bk, recurrent bias 0
    output         weight V (V, H), bias c (V,)

which is exact: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) is
rnn_gpu's layer with x_t I = x_t and b_hh = 0 (torch.nn.RNN's and ONNX's RNN
equation alike). Imports no optional library.
"""
from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np

from ..checkpoint import BEST_FILENAME, FILENAME, Checkpoint
from ..data import bpe, words
from ..data.vocab import VOCAB_KINDS, Vocab
from ..errors import CheckpointError, UsageError
from ..layout import layer_names, layers_in, param_shapes

FORMATS = ("torch", "onnx", "safetensors")
SUFFIXES = {"torch": ".pt", "onnx": ".onnx", "safetensors": ".safetensors"}
# The tag each file carries (a "format" key), so a reader knows it for an rnn_gpu model.
FORMAT_TAGS = {"torch": "rnn_gpu.torch/1", "onnx": "rnn_gpu.onnx/1", "safetensors": "rnn_gpu.safetensors/1"}
# What the string metadata of an ONNX or a safetensors file holds (vocab_tokenizer for word and BPE vocabularies
# only; a BPE vocabulary's tokenizer JSON, as `tokenizers` wrote it, in vocab_tokenizer_json, and the library's
# version in vocab_tokenizers_version).
METADATA_KEYS = ("format", "vocab_kind", "vocab_symbols", "config", "vocab_size", "hidden_size", "layers", "dtype")
EXTRAS = {"torch": "torch", "onnx": "export", "onnxruntime": "export", "safetensors": "export"}


def require(module: str, doing: str):
    """The optional library `module`, imported now; missing, a UsageError
    that names the extra to install (as `rnn-gpu plot` does for matplotlib)."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{doing} needs the {package} package: pip install 'rnn_gpu[{EXTRAS[package]}]'") from None


def check_format(format) -> str:
    if format not in FORMATS:
        raise UsageError(f"cannot export to {format!r}; formats: {', '.join(FORMATS)}")
    return format


def check_output(output, source=None) -> Path:
    """The file to write: not a directory, in a directory that exists, and not
    the checkpoint being exported."""
    if not isinstance(output, (str, Path)) or not str(output).strip():
        raise UsageError(f"the output must be a file's path, got {output!r}")
    p = Path(output)
    if p.is_dir():
        raise UsageError(f"-o {p}: is a directory; give the name of a file to write")
    if not p.parent.is_dir():
        why = "is not a directory" if p.parent.exists() else "does not exist"
        raise UsageError(f"-o {p}: its directory {p.parent} {why}")
    if isinstance(source, (str, Path)):
        s = Path(source)
        if p.resolve() in {c.resolve() for c in (s, s / FILENAME, s / BEST_FILENAME)}:
            raise UsageError(f"-o {p}: is the checkpoint being exported; choose another file")
    return p


def is_safetensors(path) -> bool:
    """Whether `path` is a file that starts as a safetensors file does (an
    8-byte little-endian header length, then the JSON header's '{'); a .npz
    checkpoint starts 'PK'."""
    p = Path(path)
    try:
        if not p.is_file():  # a regular file: a FIFO's open would block
            return False
        with p.open("rb") as f:
            head = f.read(9)
            size = p.stat().st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8


def check_params(params: dict, vocab_size: int, where) -> dict:
    """The parameters in `param_shapes` order, each finite floats of its
    shape, no others; else a CheckpointError naming `where`."""
    layers = layers_in(params)
    if layers == 0:
        missing = [k for k in layer_names(1) if k not in params]
        raise CheckpointError(f"{where}: no parameters {', '.join(missing)}")
    W = params["W"]
    H = W.shape[0] if W.ndim == 2 else -1
    shapes = param_shapes(vocab_size, H, layers)
    missing = [k for k in shapes if k not in params]
    extra = sorted(set(params) - set(shapes))
    if missing or extra:
        what = [f"no {', '.join(missing)}"] * bool(missing) + [f"unexpected {', '.join(extra)}"] * bool(extra)
        raise CheckpointError(f"{where}: parameters of a {layers}-layer model expected; {'; '.join(what)}")
    for k, shape in shapes.items():
        a = params[k]
        if a.shape != shape or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise CheckpointError(f"{where}: parameter {k} has shape {a.shape} and dtype {a.dtype}; "
                                  f"expected finite floats of shape {shape} (vocabulary of {vocab_size})")
    return {k: params[k] for k in shapes}


def sizes(ckpt: Checkpoint, standard: bool = True) -> tuple[int, int, int]:
    """(V, H, L) of a model to export; with `standard` (the torch and ONNX
    exports: nn.RNN and ONNX's RNN), only of a model they can express
    (`check_standard`)."""
    if standard:
        check_standard(ckpt)
    return len(ckpt.vocab), ckpt.params["W"].shape[0], layers_in(ckpt.params)


def check_standard(ckpt: Checkpoint) -> None:
    """A UsageError naming the setting when the model's forward pass is
    none a standard RNN computes: residual connections, or zoneout (whose
    evaluation mixes in the previous state). What is training's alone
    (dropout of any kind, weight drop, AR, TAR, weight decay, the
    initialisations) leaves the forward pass standard."""
    config = ckpt.config if isinstance(ckpt.config, dict) else {}
    zoneout = config.get("zoneout")
    found = ["residual=True"] * (config.get("residual") is True)
    found += [f"zoneout={zoneout}"] * (isinstance(zoneout, (int, float)) and not isinstance(zoneout, bool)
                                       and zoneout > 0)
    if found:
        raise UsageError(f"the model was trained with {' and '.join(found)}: its forward pass is not a standard "
                         "RNN's (nn.RNN, ONNX's RNN), so it exports to safetensors only")


# -- the vocabulary and configuration as strings --------------------------
def metadata(ckpt: Checkpoint, format: str, dtype) -> dict[str, str]:
    """String metadata of an ONNX or safetensors file (METADATA_KEYS)."""
    V, H, L = sizes(ckpt, standard=format != "safetensors")
    meta = {"format": FORMAT_TAGS[format], "vocab_kind": ckpt.vocab.kind,
            "vocab_symbols": json.dumps(list(ckpt.vocab.symbols), ensure_ascii=False),
            "config": json.dumps(ckpt.config, sort_keys=True, default=str), "vocab_size": str(V),
            "hidden_size": str(H), "layers": str(L), "dtype": np.dtype(dtype).name}
    if ckpt.vocab.kind == "words":
        meta["vocab_tokenizer"] = words.TOKENIZER
    if ckpt.vocab.kind == "bpe":
        meta.update(vocab_tokenizer=bpe.TOKENIZER, vocab_tokenizer_json=ckpt.vocab.tokenizer,
                    vocab_tokenizers_version=bpe.library_version())
    return meta


def vocab_record(vocab: Vocab) -> dict:
    """The vocabulary as a torch file keeps it: kind, symbols (code points,
    byte values, token strings with "" the unknown token, or BPE tokens as
    strings of the byte-level alphabet), tokenizer; for bpe the tokenizer's
    JSON (`tokenizers.Tokenizer.from_str` reads it)."""
    record = {"kind": vocab.kind, "symbols": list(vocab.symbols)}
    if vocab.kind == "words":
        record["tokenizer"] = words.TOKENIZER
    if vocab.kind == "bpe":
        record.update(tokenizer=bpe.TOKENIZER, tokenizer_json=vocab.tokenizer, tokenizers_version=bpe.library_version())
    return record


def read_metadata(meta, where, format: str) -> tuple[Vocab, dict, dict]:
    """(vocabulary, configuration, the sizes V, H, L as recorded) of a file's
    string metadata; a CheckpointError naming `where` for anything amiss."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_TAGS[format]:
        raise CheckpointError(f"{where}: not an rnn_gpu model (its metadata has no format "
                              f"'{FORMAT_TAGS[format]}')")
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{where}: its metadata is missing {', '.join(missing)}")
    kind = meta["vocab_kind"]
    try:
        symbols = json.loads(meta["vocab_symbols"])
        config = json.loads(meta["config"])
        recorded = {k: int(meta[k]) for k in ("vocab_size", "hidden_size", "layers")}
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{where}: damaged metadata ({exc})") from None
    if kind not in VOCAB_KINDS or not isinstance(symbols, list):
        raise CheckpointError(f"{where}: damaged vocabulary (kind {kind!r})")
    if kind in ("chars", "bytes") and not all(isinstance(s, int) and not isinstance(s, bool) for s in symbols):
        raise CheckpointError(f"{where}: damaged vocabulary (symbols of a {kind} vocabulary are integers)")
    vocab = bpe_vocab(meta, symbols, where) if kind == "bpe" else Vocab(kind, tuple(symbols))
    if not vocab.valid:
        raise CheckpointError(f"{where}: damaged vocabulary")
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: damaged configuration (not a JSON object)")
    tokenizer = meta.get("vocab_tokenizer")
    if kind == "words" and tokenizer != words.TOKENIZER:
        raise CheckpointError(f"{where}: its word vocabulary is of tokenizer {tokenizer}, not this version's "
                              f"{words.TOKENIZER}")
    return vocab, config, recorded


def bpe_vocab(meta: dict, symbols: list, where) -> Vocab:
    """The BPE vocabulary of a file's string metadata, its tokenizer checked
    as a checkpoint's is (data/bpe.py): a CheckpointError naming `where`."""
    tokenizer = meta.get("vocab_tokenizer")
    if tokenizer != bpe.TOKENIZER:
        raise CheckpointError(f"{where}: its BPE vocabulary is of tokenizer {tokenizer}, not this version's "
                              f"{bpe.TOKENIZER}")
    bpe.library(f"{where}: its BPE vocabulary")
    try:
        vocab = Vocab.from_bpe(meta.get("vocab_tokenizer_json"), meta.get("vocab_tokenizers_version"))
    except ValueError as exc:
        raise CheckpointError(f"{where}: its BPE tokenizer (vocab_tokenizer_json) is damaged or unreadable: "
                              f"{exc}") from None
    if list(vocab.symbols) != symbols:
        raise CheckpointError(f"{where}: damaged vocabulary (vocab_symbols are not its BPE tokenizer's tokens)")
    return vocab


def bpe_vocab_of_record(record: dict, where) -> Vocab:
    """The BPE vocabulary of a torch file's `vocab_record`, checked as `bpe_vocab` checks metadata."""
    meta = {"vocab_tokenizer": record.get("tokenizer"), "vocab_tokenizer_json": record.get("tokenizer_json"),
            "vocab_tokenizers_version": record.get("tokenizers_version")}
    symbols = record.get("symbols")
    return bpe_vocab(meta, symbols if isinstance(symbols, list) else None, where)


# -- the standard RNN's parameters -----------------------------------------
def standard_layers(params: dict, dtype=np.float32) -> tuple[np.ndarray, list, tuple]:
    """(embedding (V, H), [(W_ih, W_hh, b_ih, b_hh) per layer], (output weight, output bias)),
    contiguous arrays of `dtype` in the mapping above."""
    L, H = layers_in(params), params["W"].shape[0]

    def f(a):
        return np.ascontiguousarray(np.asarray(a), dtype=dtype)

    layers = []
    for k in range(1, L + 1):
        U, W, b = layer_names(k)
        W_ih = np.eye(H, dtype=dtype) if k == 1 else f(params[U])
        layers.append((W_ih, f(params[W]), f(params[b]), np.zeros(H, dtype=dtype)))
    return f(params["U"].T), layers, (f(params["V"]), f(params["c"]))


def torch_state_dict(params: dict, dtype=np.float32) -> dict[str, np.ndarray]:
    """The state dict (as NumPy arrays) of ModuleDict(embedding=nn.Embedding(V, H),
    rnn=nn.RNN(H, H, L), linear=nn.Linear(H, V))."""
    embedding, layers, (weight, bias) = standard_layers(params, dtype)
    state = {"embedding.weight": embedding}
    for i, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers):
        state.update({f"rnn.weight_ih_l{i}": W_ih, f"rnn.weight_hh_l{i}": W_hh, f"rnn.bias_ih_l{i}": b_ih,
                      f"rnn.bias_hh_l{i}": b_hh})
    state.update({"linear.weight": weight, "linear.bias": bias})
    return state


def float32_bytes(params: dict) -> int:
    return 4 * sum(math.prod(np.shape(v)) for v in params.values())


def params_from_torch(state: dict, where) -> dict[str, np.ndarray]:
    """rnn_gpu's parameters from the state dict of the PyTorch export
    (`torch_state_dict`'s names), or of the same modules with one-hot inputs
    (no `embedding.weight`; `rnn.weight_ih_l0` of shape (H, V)). Both
    biases of a layer add up to its b; an embedding E with input weights
    W_ih folds into U = W_ih E^T (exactly U = E^T for the identity)."""
    L = sum(1 for k in state if k.startswith("rnn.weight_hh_l"))
    names = ["linear.weight", "linear.bias"] + [f"rnn.{w}_l{i}" for i in range(L)
                                                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    missing = [k for k in names if k not in state]
    if L == 0 or missing:
        raise CheckpointError(f"{where}: not the state dict of nn.Embedding + nn.RNN + nn.Linear (docs/export.md); "
                              f"missing {', '.join(missing) or 'rnn.weight_hh_l0'}")
    params = {}
    for i in range(L):
        U, W, b = layer_names(i + 1)
        W_ih, params[W] = state[f"rnn.weight_ih_l{i}"], state[f"rnn.weight_hh_l{i}"]
        params[b] = state[f"rnn.bias_ih_l{i}"] + state[f"rnn.bias_hh_l{i}"]
        params[U] = W_ih
    if "embedding.weight" in state:
        E, W_ih = state["embedding.weight"], params["U"]
        if E.ndim != 2 or W_ih.ndim != 2 or W_ih.shape[1] != E.shape[1]:
            raise CheckpointError(f"{where}: embedding.weight {E.shape} does not feed rnn.weight_ih_l0 {W_ih.shape}")
        params["U"] = E.T.copy() if np.array_equal(W_ih, np.eye(*W_ih.shape)) else W_ih @ E.T
    params["V"], params["c"] = state["linear.weight"], state["linear.bias"]
    return check_params(params, params["V"].shape[0] if params["V"].ndim == 2 else -1, where)
