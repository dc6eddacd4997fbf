"""Streaming corpus preparation: text of any size to an encoded array on disk.

`prepare(sources, kind, prefix)` writes PREFIX.bin (the symbol ids, uint8 or
uint16, raw) and PREFIX.json (vocabulary, dtype, length, sources), reading
fixed-size chunks so memory stays bounded by the chunk size. UTF-8 is
decoded incrementally, so a character split across chunks is whole. With a
character vocabulary the sources are read twice: once to collect the code
points (the vocabulary is their sorted set), once to encode. With a word
vocabulary (words.py) the first pass counts tokens in bounded memory (see
`count_words`) and PREFIX.unk.bin keeps the length of every token that the
unknown token replaced (uint8), so losses can be reported per character.

PREFIX.json also records the largest id (`max_id`), seen while encoding, so
a start reads the metadata alone; training checks each window it reads
against the vocabulary (data.py). A corpus prepared without `max_id` is
checked once, by reading its data through a bounded buffer, and the maximum
is written into its metadata when the file is writable.

Training reads a prepared corpus through a memory map.
"""
from __future__ import annotations

import codecs
import contextlib
import fnmatch
import glob
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import words
from .data import CorpusError, Vocab
from .errors import EnvironmentFailure, UsageError
from .fileio import atomic_write, check_writable, make_directory

CHUNK_BYTES = 8 << 20
FORMAT = "rnn_gpu.corpus/1"


IN_MEMORY_MAX_BYTES = 256 << 20  # with no writable cache, sources up to this size are prepared in memory
COUNT_CAPACITY = 1 << 19  # distinct tokens a word count keeps exactly (it holds up to twice as many)


def cache_dirs(spare: Path | None = None) -> list[Path]:
    """Where `train` may keep prepared forms of raw corpora, in order:
    $RNN_GPU_CACHE if set (then only it), else $XDG_CACHE_HOME/rnn_gpu,
    ~/.cache/rnn_gpu, then `spare` (a cache beside the run directory)."""
    if os.environ.get("RNN_GPU_CACHE"):
        return [Path(os.environ["RNN_GPU_CACHE"])]
    dirs = []
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(Path(os.environ["XDG_CACHE_HOME"]) / "rnn_gpu")
    with contextlib.suppress(RuntimeError, KeyError):  # no $HOME and no passwd entry
        dirs.append(Path.home() / ".cache" / "rnn_gpu")
    if spare is not None:
        dirs.append(Path(spare))
    return dirs


def cache_dir() -> Path:
    """The first cache directory (see cache_dirs)."""
    return cache_dirs()[0]


def writable_dir(path: Path) -> bool:
    try:
        make_directory(path)
        check_writable(path)
    except (EnvironmentFailure, UsageError):  # no permission, no space, a file in the way
        return False
    return True


def as_specs(spec) -> list[str]:
    """One corpus spec or several (files, directories, globs), as a list."""
    if isinstance(spec, (list, tuple)):
        return [str(s) for s in spec]
    return [str(spec)]


def selected(path: Path, root: Path, include, exclude) -> bool:
    """A file found under a directory: not hidden (nor under a hidden folder),
    and matching the --include patterns (if any) but none of --exclude, by
    name or by its path relative to the directory."""
    relative = path.relative_to(root)
    if any(part.startswith(".") for part in relative.parts):
        return False
    names = (path.name, relative.as_posix())
    if include and not any(fnmatch.fnmatch(n, pattern) for pattern in include for n in names):
        return False
    return not any(fnmatch.fnmatch(n, pattern) for pattern in exclude for n in names)


def expand_sources(spec, include=(), exclude=()) -> list[Path]:
    """Files, directories (their files, recursively, sorted, hidden ones
    skipped, filtered by `include` and `exclude` glob patterns) and globs, in
    the order given; a file named twice is read once."""
    files: list[Path] = []
    for one in as_specs(spec):
        p = Path(one)
        if p.is_file():
            found = [p]
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and selected(f, p, include, exclude))
            if not found:
                matching = " matching --include/--exclude" if include or exclude else ""
                raise CorpusError(f"no files in {one}{matching}")
        elif p.exists():
            raise CorpusError(f"corpus {one} is not a regular file (a device, FIFO or socket cannot be read twice)")
        else:
            found = sorted(Path(f) for f in glob.glob(one, recursive=True) if Path(f).is_file())
            if not found:
                raise CorpusError(f"corpus not found: {one}")
        files += [f for f in found if f not in files]
    if not files:
        raise CorpusError("no corpus files given")
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


def text_pieces(path: Path):
    """The UTF-8 text of `path` in pieces (strings)."""
    for codes in decoded_chunks(path):
        yield codes.tobytes().decode("latin-1" if codes.dtype == np.uint8 else "utf-32-le")


def word_tokens(paths):
    """Lists of the tokens of each file in turn (a token never spans two files)."""
    for path in paths:
        yield from words.tokens_of_pieces(text_pieces(path))


def count_words(paths, size: int, capacity: int | None = None) -> tuple[Vocab, dict]:
    """The word vocabulary of `size` of the sources, and what PREFIX.json
    says of how it was chosen. Counting keeps at most 2 * `capacity` distinct
    tokens (words.BoundedCounter); if it had to prune, a second pass counts
    the tokens it kept exactly, and the choice is exact when the last chosen
    token's count exceeds the pruned total (`count_error`), as it is on any
    corpus whose distinct tokens fit the capacity."""
    counted = words.BoundedCounter(max(capacity or COUNT_CAPACITY, 2 * size))
    for tokens in word_tokens(paths):
        counted.update(tokens)

    def recount(candidates):
        exact = Counter(dict.fromkeys(candidates, 0))
        for tokens in word_tokens(paths):
            exact.update(filter(candidates.__contains__, tokens))
        return exact

    symbols, exact = words.exact_top(counted, recount, size)
    return Vocab("words", symbols), {"tokenizer": words.TOKENIZER, "vocab_size": size, "vocab_exact": exact,
                                     "count_error": counted.error, "tokens_counted": counted.total}


def encoded_chunks(paths, vocab: Vocab, unknown_lengths: list | None = None):
    """The ids of the sources in pieces. Words: the lengths of the tokens
    that became the unknown token are appended to `unknown_lengths`."""
    if vocab.kind == "words":
        for tokens in word_tokens(paths):
            ids, unknown = vocab.encode_words(tokens)
            if unknown_lengths is not None:
                unknown_lengths.append(unknown)
            yield ids
        return
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
    origin: str = ""  # made or reused, and where
    unknown_lengths: np.ndarray | None = None  # words: the length of each token the unknown token replaced


def source_signature(paths) -> list[dict]:
    return [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in paths]


def prepare(spec, kind: str = "chars", prefix: Path | None = None, include=(), exclude=(),
            vocab_size: int | None = None) -> Path:
    """Encodes `spec` (one or several sources) to PREFIX.bin and PREFIX.json; returns the .json path."""
    paths = expand_sources(spec, include, exclude)
    prefix = Path(prefix) if prefix else cache_prefix(paths, kind, vocab_size=vocab_size)
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


def corpus_vocab(paths, kind: str, vocab_size: int | None = None) -> tuple[Vocab, dict]:
    """The vocabulary of the sources (a first pass over them for chars and
    words), and what PREFIX.json records of how it was made."""
    if kind == "words":
        vocab, how = count_words(paths, vocab_size or words.DEFAULT_VOCAB_SIZE)
    else:
        vocab, how = collect_code_points(paths) if kind == "chars" else Vocab.bytes256(), {}
    if not vocab.symbols:
        raise CorpusError(f"corpus is empty: {', '.join(map(str, paths))}")
    return vocab, how


def metadata(vocab: Vocab, length: int, paths, max_id: int, how=None) -> dict:
    """What PREFIX.json records of a prepared corpus (less where its data lies)."""
    if length == 0:
        raise CorpusError(f"corpus is empty: {', '.join(map(str, paths))}")
    return {"format": FORMAT, "vocab_kind": vocab.kind, "symbols": list(vocab.symbols),
            "dtype": np.dtype(vocab.dtype).name, "length": length, "max_id": max_id,
            "sources": source_signature(paths), **(how or {})}


def cache_prefix(paths, kind: str, directory: Path | None = None, vocab_size: int | None = None) -> Path:
    if kind == "words":
        kind = f"words{vocab_size or words.DEFAULT_VOCAB_SIZE}"
    key = hashlib.sha256(json.dumps([str(p.resolve()) for p in paths] + [kind]).encode()).hexdigest()[:16]
    return (directory or cache_dir()) / f"{paths[0].name}-{kind}-{key}"


def is_prepared(spec) -> bool:
    return str(spec).endswith(".json") and Path(spec).is_file()


def load_prepared(meta_path) -> Prepared:
    """Opens a prepared corpus from its metadata; the ids are memory-mapped,
    never read whole (but once, for a corpus whose metadata has no `max_id`)."""
    meta_path = Path(meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("no format tag")
        kind = str(meta["vocab_kind"])
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
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{meta_path}: not a prepared rnn_gpu corpus ({exc})") from None
    ids = mapped(meta_path, data, dtype, length)
    if top is None:  # prepared before max_id was recorded: check it once
        top = meta["max_id"] = largest_id(data, dtype)
        record_max_id(meta_path, meta)
    if top >= len(vocab):
        raise CorpusError(f"{meta_path}: its data holds symbol id {top}, beyond its vocabulary of {len(vocab)}")
    unknown = None if unknown_file is None else mapped(meta_path, unknown_file, np.uint8, unknown_count)
    return Prepared(vocab, ids, meta, unknown_lengths=unknown)


def mapped(meta_path: Path, data: Path, dtype, length: int) -> np.ndarray:
    """A read-only memory map of `length` items of `dtype` in `data` (an empty array for none)."""
    if not data.is_file() or data.stat().st_size != length * np.dtype(dtype).itemsize:
        raise CorpusError(f"{meta_path}: its data file {data} is missing or has the wrong size")
    return np.memmap(data, dtype=dtype, mode="r", shape=(length,)) if length else np.zeros(0, dtype)


def largest_id(data: Path, dtype: np.dtype) -> int:
    """The largest id in the file `data`, read through one bounded buffer (a
    memory map's pages would stay resident)."""
    buffer, top = np.empty(CHUNK_BYTES // dtype.itemsize, dtype=dtype), 0
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


def prepared_for(spec, kind: str, spare: Path | None = None, include=(), exclude=(),
                 vocab_size: int | None = None) -> Prepared:
    """The prepared form of a raw corpus, made once and reused while the
    sources are unchanged (size and modification time): from the first cache
    directory that holds it, else made in the first writable one, else (for
    sources up to IN_MEMORY_MAX_BYTES) prepared in memory."""
    paths = expand_sources(spec, include, exclude)
    dirs = cache_dirs(spare)
    for directory in dirs:
        prefix = cache_prefix(paths, kind, directory, vocab_size)
        meta_path = prefix.with_name(prefix.name + ".json")
        if meta_path.is_file():
            try:
                prepared = load_prepared(meta_path)
                if prepared.meta.get("sources") == source_signature(paths):
                    prepared.origin = f"reused the cache {meta_path}"
                    return prepared
            except CorpusError:
                pass  # damaged cache: prepare again
    for directory in dirs:
        if writable_dir(directory):
            prepared = load_prepared(prepare(paths, kind, cache_prefix(paths, kind, directory, vocab_size),
                                             vocab_size=vocab_size))
            prepared.origin = f"made the cache {prepared.meta['data']} in {directory}"
            return prepared
    size = sum(p.stat().st_size for p in paths)
    if size > IN_MEMORY_MAX_BYTES:
        tried = ", ".join(str(d) for d in dirs) or "none"
        raise EnvironmentFailure(f"no writable cache directory for preparing {spec} ({size:,} bytes; tried {tried}); "
                                 "set RNN_GPU_CACHE or run `rnn-gpu prepare` with -o")
    return prepare_in_memory(paths, kind, f"prepared in memory (no writable cache in {', '.join(map(str, dirs))})",
                             vocab_size)


def prepare_in_memory(paths, kind: str, origin: str, vocab_size: int | None = None) -> Prepared:
    vocab, how = corpus_vocab(paths, kind, vocab_size)
    unknown = [] if kind == "words" else None
    ids = np.concatenate([np.asarray(c, dtype=vocab.dtype) for c in encoded_chunks(paths, vocab, unknown)])
    lengths = None if unknown is None else np.concatenate([np.zeros(0, np.uint8), *unknown])
    top = int(ids.max()) if len(ids) else 0
    return Prepared(vocab, ids, metadata(vocab, len(ids), paths, top, how), origin, lengths)
