"""A training corpus: the embedded default (the standard library's source),
a raw file prepared once into a cache, or a prepared corpus, split into
training and validation parts."""
from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import words
from .data import VOCAB_KINDS, CorpusError, SymbolChars, Vocab
from .prepare import as_specs, is_prepared, load_prepared, prepared_for

DEFAULT_CORPUS_CAP = 2_000_000  # characters of the embedded default corpus


def default_corpus(cap: int = DEFAULT_CORPUS_CAP) -> tuple[str, str]:
    """The Python standard library's own source, found from the running
    interpreter, in sorted file order, capped to `cap` characters.

    Returns (text, description). Needs no download and is the same on every
    run with the same interpreter.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        size += len(text)
        if size >= cap:
            break
    text = "".join(parts)[:cap]
    if not text:
        raise CorpusError(f"no standard-library sources found under {stdlib}; pass a CORPUS")
    return text, f"Python standard library source: Python {sys.version.split()[0]} ({stdlib}), {len(text):,} characters"


@dataclass
class Corpus:
    vocab: Vocab
    train: np.ndarray  # encoded ids (a memory map for files)
    val: np.ndarray
    source: str  # what it is, for people
    prepared: str = ""  # where its prepared form came from, if it has one
    val_symbol_chars: SymbolChars | None = None  # characters each validation symbol covers (None: one each)


def split(vocab: Vocab, ids: np.ndarray, val_fraction: float, source: str, prepared: str = "",
          unknown_lengths=None) -> Corpus:
    """`unknown_lengths`: words: the length of each token the unknown token replaced in `ids`, in order."""
    n_val = int(len(ids) * val_fraction)
    val = ids[len(ids) - n_val:]
    chars = None if vocab.kind == "chars" else SymbolChars(vocab, val, unknown_lengths)
    return Corpus(vocab, ids[: len(ids) - n_val], val, source, prepared, chars)


def in_memory_words(text: str, size: int | None) -> tuple[Vocab, np.ndarray, np.ndarray]:
    """A word vocabulary of `text`, its ids and the lengths of its unknown tokens."""
    tokens = words.tokenize(text)
    vocab = Vocab.from_tokens(tokens, size or words.DEFAULT_VOCAB_SIZE)
    return (vocab, *vocab.encode_words(tokens))


def load_corpus(path, vocab_kind: str | None = "chars", val_fraction: float = 0.1,
                spare_cache: Path | None = None, include=(), exclude=(), vocab_size: int | None = None) -> Corpus:
    """The corpus at `path` (None: the embedded default), split into training
    and validation parts. Files are prepared once (see prepare.py) and read
    through a memory map; a prepared corpus (.json) is used as it is.
    `path` may be several files, directories and globs (`include`/`exclude`
    filter the files found in directories). `spare_cache`: where to prepare
    when no user cache directory is writable. `vocab_size`: of a word
    vocabulary (default words.DEFAULT_VOCAB_SIZE)."""
    if vocab_kind not in (None, *VOCAB_KINDS):
        raise CorpusError(f"unknown vocabulary {vocab_kind!r}; choose {', '.join(VOCAB_KINDS)}")
    if path is None:
        text, source = default_corpus()
        if vocab_kind == "words":
            vocab, ids, unknown = in_memory_words(text, vocab_size)
            return split(vocab, ids, val_fraction, source, unknown_lengths=unknown)
        vocab = Vocab.from_text(text) if vocab_kind != "bytes" else Vocab.bytes256()
        return split(vocab, vocab.encode(text), val_fraction, source)
    specs = as_specs(path)
    if len(specs) == 1 and is_prepared(specs[0]):
        prepared = load_prepared(specs[0])
        prepared.origin = f"{specs[0]} (given)"
    else:
        prepared = prepared_for(specs, vocab_kind or "chars", spare_cache, include, exclude, vocab_size)
    if vocab_kind is not None and prepared.vocab.kind != vocab_kind:
        raise CorpusError(f"{path} was prepared with --vocab {prepared.vocab.kind}, not {vocab_kind}")
    if vocab_size is not None and prepared.vocab.kind == "words" and prepared.meta.get("vocab_size") != vocab_size:
        raise CorpusError(f"{path} was prepared with --vocab-size {prepared.meta.get('vocab_size')}, "
                          f"not {vocab_size}")
    sources = prepared.meta.get("sources", [])
    size = sum(int(src.get("size", 0)) for src in sources)
    what = " ".join(specs) + (f" ({len(sources)} files, {size:,} bytes)" if len(sources) > 1 else f" ({size:,} bytes)")
    return split(prepared.vocab, prepared.ids, val_fraction, what, prepared.origin, prepared.unknown_lengths)


