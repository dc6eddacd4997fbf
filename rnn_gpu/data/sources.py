"""Where a corpus's text comes from and how it is read: files, directories
(their files, filtered) and globs, read in fixed-size chunks so memory stays
bounded, UTF-8 decoded incrementally so a character split across chunks is
whole, and word tokens of text that arrives in pieces."""
from __future__ import annotations

import codecs
import fnmatch
import glob
from pathlib import Path

import numpy as np

from ..errors import CorpusError
from . import words

CHUNK_BYTES = 8 << 20


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
                matching = " matching include= or exclude=" if include or exclude else ""
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
                "use vocab=bytes to train on raw bytes") from None
        offset += len(chunk)
        yield np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not valid UTF-8: the file ends inside a character; "
                          "use vocab=bytes to train on raw bytes") from None


def text_pieces(path: Path):
    """The UTF-8 text of `path` in pieces (strings)."""
    for codes in decoded_chunks(path):
        yield codes.tobytes().decode("latin-1" if codes.dtype == np.uint8 else "utf-32-le")


def word_tokens(paths):
    """Lists of the tokens of each file in turn (a token never spans two files)."""
    for path in paths:
        yield from words.tokens_of_pieces(text_pieces(path))


def source_signature(paths) -> list[dict]:
    return [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in paths]
