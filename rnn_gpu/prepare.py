"""Streaming corpus preparation: text of any size to an encoded array on disk.

`prepare(sources, kind, prefix)` writes PREFIX.bin (the symbol ids, uint8 or
uint16, raw) and PREFIX.json (vocabulary, dtype, length, sources), reading
fixed-size chunks so memory stays bounded by the chunk size. UTF-8 is
decoded incrementally, so a character split across chunks is whole. With a
character vocabulary the sources are read twice: once to collect the code
points (the vocabulary is their sorted set), once to encode.

Training reads a prepared corpus through a memory map.
"""
from __future__ import annotations

import codecs
import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import CorpusError, Vocab
from .fileio import atomic_write

CHUNK_BYTES = 8 << 20
FORMAT = "rnn_gpu.corpus/1"


def cache_dir() -> Path:
    """Where `train` keeps prepared forms of raw corpora ($RNN_GPU_CACHE)."""
    return Path(os.environ.get("RNN_GPU_CACHE") or Path.home() / ".cache" / "rnn_gpu")


def expand_sources(spec: str) -> list[Path]:
    """A file, a directory (its files, recursively, sorted) or a glob."""
    p = Path(spec)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
    else:
        files = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
    if not files:
        raise CorpusError(f"corpus not found: {spec}" if not p.exists() else f"no files in {spec}")
    return files


def read_chunks(path: Path, chunk_bytes: int | None = None):
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    try:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_bytes):
                yield chunk
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc.strerror or exc}") from None


def decoded_chunks(path: Path, chunk_bytes: int | None = None):
    """UTF-8 text of `path` in pieces, as arrays of code points (uint8 for
    pure ASCII pieces, which need no decoding, else uint32)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # of the chunk in the file
    for chunk in read_chunks(path, chunk_bytes):
        pending = len(decoder.getstate()[0])  # the start of a character split at the last boundary
        if not pending and chunk.isascii():
            offset += len(chunk)
            yield np.frombuffer(chunk, dtype=np.uint8)
            continue
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"{path}: not valid UTF-8 at byte offset {offset - pending + exc.start}; "
                "use --vocab bytes to train on raw bytes") from None
        offset += len(chunk)
        yield np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not valid UTF-8: the file ends inside a character; "
                          "use --vocab bytes to train on raw bytes") from None


def collect_code_points(paths) -> Vocab:
    seen = np.zeros(0x110000, dtype=bool)
    for path in paths:
        for codes in decoded_chunks(path):
            seen[codes] = True
    return Vocab("chars", tuple(int(c) for c in np.flatnonzero(seen)))


def encoded_chunks(paths, vocab: Vocab):
    if vocab.kind == "bytes":
        for path in paths:
            for chunk in read_chunks(path):
                yield np.frombuffer(chunk, dtype=np.uint8)
        return
    for path in paths:
        for codes in decoded_chunks(path):
            yield vocab.encode_codes(codes)  # raises if a source changed between the two passes


@dataclass
class Prepared:
    """A prepared corpus: the ids (a read-only memory map) and its vocabulary."""
    vocab: Vocab
    ids: np.ndarray
    meta: dict


def source_signature(paths) -> list[dict]:
    return [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in paths]


def prepare(spec: str, kind: str = "chars", prefix: Path | None = None) -> Path:
    """Encodes `spec` to PREFIX.bin and PREFIX.json; returns the .json path."""
    paths = expand_sources(spec)
    prefix = Path(prefix) if prefix else cache_prefix(paths, kind)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    vocab = collect_code_points(paths) if kind == "chars" else Vocab.bytes256()
    if not vocab.symbols:
        raise CorpusError(f"corpus is empty: {spec}")
    length = [0]

    def write_ids(f):
        for ids in encoded_chunks(paths, vocab):
            f.write(memoryview(np.ascontiguousarray(ids, dtype=vocab.dtype)))
            length[0] += len(ids)

    bin_path, meta_path = prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".json")
    atomic_write(bin_path, write_ids)
    if length[0] == 0:
        raise CorpusError(f"corpus is empty: {spec}")
    meta = {"format": FORMAT, "vocab_kind": vocab.kind, "symbols": list(vocab.symbols),
            "dtype": np.dtype(vocab.dtype).name, "length": length[0], "sources": source_signature(paths),
            "data": bin_path.name}
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode()))
    return meta_path


def cache_prefix(paths, kind: str) -> Path:
    key = hashlib.sha256(json.dumps([str(p.resolve()) for p in paths] + [kind]).encode()).hexdigest()[:16]
    return cache_dir() / f"{paths[0].name}-{kind}-{key}"


def is_prepared(spec) -> bool:
    return str(spec).endswith(".json") and Path(spec).is_file()


def load_prepared(meta_path) -> Prepared:
    """Opens a prepared corpus; the ids are memory-mapped, never read whole."""
    meta_path = Path(meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("no format tag")
        vocab = Vocab(str(meta["vocab_kind"]), tuple(int(s) for s in meta["symbols"]))
        dtype, length = np.dtype(meta["dtype"]), int(meta["length"])
        data = meta_path.with_name(str(meta["data"]))
        if vocab.kind not in ("chars", "bytes") or not vocab.symbols or dtype != np.dtype(vocab.dtype) or length < 1:
            raise ValueError("inconsistent vocabulary, dtype or length")
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{meta_path}: not a prepared rnn_gpu corpus ({exc})") from None
    if not data.is_file() or data.stat().st_size != length * dtype.itemsize:
        raise CorpusError(f"{meta_path}: its data file {data} is missing or has the wrong size")
    return Prepared(vocab, np.memmap(data, dtype=dtype, mode="r", shape=(length,)), meta)


def prepared_for(spec: str, kind: str) -> Prepared:
    """The prepared form of a raw corpus, made once and reused while the
    sources are unchanged (size and modification time)."""
    paths = expand_sources(spec)
    prefix = cache_prefix(paths, kind)
    meta_path = prefix.with_name(prefix.name + ".json")
    if meta_path.is_file():
        try:
            prepared = load_prepared(meta_path)
            if prepared.meta.get("sources") == source_signature(paths):
                return prepared
        except CorpusError:
            pass  # damaged cache: prepare again
    return load_prepared(prepare(spec, kind))
