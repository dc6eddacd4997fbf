"""The prepared format: a corpus of any size encoded once to disk.

`prepare(sources, kind, prefix)` writes PREFIX.bin (the symbol ids, uint8,
uint16 or uint32, raw) and PREFIX.json (vocabulary, dtype, length, sources),
streaming: the sources are read in chunks (sources.py), once to choose the
vocabulary and once to encode (encoding.py). For a word vocabulary
PREFIX.unk.bin keeps the length of every token that the unknown token
replaced (uint8), so losses can be reported per character. For a BPE
vocabulary PREFIX.json holds the tokenizer itself (`tokenizer_json`, the
JSON `tokenizers` wrote, with the library's version) instead of `symbols`.

PREFIX.json also records the largest id (`max_id`), seen while encoding, so
a start reads the metadata alone; training checks each window it reads
against the vocabulary (streams.py). A corpus prepared without `max_id` is
checked once, by reading its data through a bounded buffer, and the maximum
is written into its metadata when the file is writable.

Training reads a prepared corpus through a memory map.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorpusError, EnvironmentFailure, UsageError
from ..fileio import atomic_write, make_directory
from . import bpe, sources, words
from .encoding import corpus_vocab, encoded_chunks
from .sources import expand_sources, source_signature
from .vocab import Vocab

FORMAT = "rnn_gpu.corpus/1"


@dataclass
class Prepared:
    """A prepared corpus: the ids (a read-only memory map) and its vocabulary."""
    vocab: Vocab
    ids: np.ndarray
    meta: dict
    origin: str = ""  # made or reused, and where
    unknown_lengths: np.ndarray | None = None  # words: the length of each token the unknown token replaced
    meta_path: Path | None = None  # its PREFIX.json
    cached: bool = False  # a preparation in the cache directory, made again if damaged


def prepare(spec, kind: str, prefix: Path, include=(), exclude=(), vocab_size: int | None = None) -> Path:
    """Encodes `spec` (one or several sources) to PREFIX.bin and PREFIX.json; returns the .json path."""
    paths = expand_sources(spec, include, exclude)
    prefix = Path(prefix)
    make_directory(prefix.parent)
    vocab, how = corpus_vocab(paths, kind, vocab_size)
    length, top, unknown = [0], [0], [] if kind == "words" else None

    def write_ids(f):
        for ids in encoded_chunks(paths, vocab, unknown):
            f.write(memoryview(np.ascontiguousarray(ids, dtype=vocab.dtype)))
            length[0] += len(ids)
            if len(ids):
                top[0] = max(top[0], int(ids.max()))

    bin_path, meta_path = prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".json")
    atomic_write(bin_path, write_ids)
    meta = {**metadata(vocab, length[0], paths, top[0], how), "data": bin_path.name}
    if unknown is not None:
        unknown_path = prefix.with_name(prefix.name + ".unk.bin")
        atomic_write(unknown_path, lambda f: [f.write(memoryview(a)) for a in unknown])
        meta.update(unknown_data=unknown_path.name, unknown_count=sum(len(a) for a in unknown))
    write_metadata(meta_path, meta)
    return meta_path


def write_metadata(meta_path: Path, meta: dict) -> None:
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode()))


def metadata(vocab: Vocab, length: int, paths, max_id: int, how=None) -> dict:
    """What PREFIX.json records of a prepared corpus (less where its data lies)."""
    if length == 0:
        raise CorpusError(f"corpus is empty: {', '.join(map(str, paths))}")
    symbols = {"tokenizer_json": vocab.tokenizer} if vocab.kind == "bpe" else {"symbols": list(vocab.symbols)}
    return {"format": FORMAT, "vocab_kind": vocab.kind, **symbols,
            "dtype": np.dtype(vocab.dtype).name, "length": length, "max_id": max_id,
            "sources": source_signature(paths), **(how or {})}


def bpe_vocab(meta: dict, meta_path: Path) -> Vocab:
    """The BPE vocabulary of a prepared corpus's metadata, its tokenizer
    checked (bpe.check); a CorpusError naming the file."""
    if meta.get("tokenizer") != bpe.TOKENIZER:
        raise CorpusError(f"{meta_path}: its BPE vocabulary is of tokenizer {meta.get('tokenizer')!r}, not this "
                          f"version's {bpe.TOKENIZER}; prepare the corpus again")
    bpe.library(f"{meta_path}: its BPE vocabulary")
    try:
        return Vocab.from_bpe(meta.get("tokenizer_json"), meta.get("tokenizers_version"))
    except ValueError as exc:
        raise CorpusError(f"{meta_path}: its BPE tokenizer (tokenizer_json) is damaged or unreadable: {exc}; "
                          "prepare the corpus again") from None


def load_prepared(meta_path) -> Prepared:
    """Opens a prepared corpus from its metadata; the ids are memory-mapped,
    never read whole (but once, for a corpus whose metadata has no `max_id`)."""
    meta_path = Path(meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("no format tag")
        kind = str(meta["vocab_kind"])
        if kind == "bpe":
            vocab = bpe_vocab(meta, meta_path)
        else:
            vocab = Vocab(kind, tuple(str(s) if kind == "words" else int(s) for s in meta["symbols"]))
        dtype, length = np.dtype(meta["dtype"]), int(meta["length"])
        data = meta_path.with_name(str(meta["data"]))
        if not vocab.valid or dtype != np.dtype(vocab.dtype) or length < 1:
            raise ValueError("inconsistent vocabulary, dtype or length")
        if kind == "words" and meta.get("tokenizer") != words.TOKENIZER:
            raise ValueError(f"tokenizer {meta.get('tokenizer')!r}, not this version's {words.TOKENIZER}")
        top = meta.get("max_id")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
            raise ValueError(f"max_id {top!r} is not a whole number >= 0")
        unknown_file = meta_path.with_name(str(meta["unknown_data"])) if kind == "words" else None
        unknown_count = int(meta["unknown_count"]) if kind == "words" else 0
    except CorpusError:
        raise  # says what is wrong already
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{meta_path}: not a prepared rnn_gpu corpus ({exc})") from None
    ids = mapped(meta_path, data, dtype, length)
    if top is None:  # prepared before max_id was recorded: check it once
        top = meta["max_id"] = largest_id(data, dtype)
        record_max_id(meta_path, meta)
    if top >= len(vocab):
        raise CorpusError(f"{meta_path}: its data holds symbol id {top}, beyond its vocabulary of {len(vocab)}")
    unknown = None if unknown_file is None else mapped(meta_path, unknown_file, np.uint8, unknown_count)
    return Prepared(vocab, ids, meta, unknown_lengths=unknown, meta_path=meta_path)


def mapped(meta_path: Path, data: Path, dtype, length: int) -> np.ndarray:
    """A read-only memory map of `length` items of `dtype` in `data` (an empty array for none)."""
    if not data.is_file() or data.stat().st_size != length * np.dtype(dtype).itemsize:
        raise CorpusError(f"{meta_path}: its data file {data} is missing or has the wrong size")
    return np.memmap(data, dtype=dtype, mode="r", shape=(length,)) if length else np.zeros(0, dtype)


def largest_id(data: Path, dtype: np.dtype) -> int:
    """The largest id in the file `data`, read through one bounded buffer (a
    memory map's pages would stay resident)."""
    buffer, top = np.empty(sources.CHUNK_BYTES // dtype.itemsize, dtype=dtype), 0
    try:
        with open(data, "rb", buffering=0) as f:
            while n := f.readinto(memoryview(buffer).cast("B")) // dtype.itemsize:
                top = max(top, int(buffer[:n].max()))
    except OSError as exc:
        raise CorpusError(f"cannot read {data}: {exc.strerror or exc}") from None
    return top


def record_max_id(meta_path: Path, meta: dict) -> None:
    """Writes the maximum found into an older corpus's metadata, atomically,
    so the next start reads it; a read-only corpus is checked at every start."""
    with contextlib.suppress(EnvironmentFailure, UsageError):
        write_metadata(meta_path, meta)


def is_prepared(spec) -> bool:
    return str(spec).endswith(".json") and Path(spec).is_file()


def prepared_prefix(output: Path | None, specs: list[str], vocab: str) -> Path:
    """Where `prepare` writes PREFIX.bin and PREFIX.json: -o PREFIX (PREFIX.json
    or PREFIX.bin naming the same), inside -o DIR, or beside a single source."""
    source = Path(specs[0])
    single = len(specs) == 1 and source.exists()
    if output is None or output.is_dir():
        if not single:
            raise UsageError("pass -o PREFIX: with several sources or a glob there is no single name to derive")
        return (output or source.parent) / f"{source.name}.{vocab}"
    if output.suffix in (".json", ".bin"):
        output = output.with_suffix("")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: no directory {output.parent}")
    return output
