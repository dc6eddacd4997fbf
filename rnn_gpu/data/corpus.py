"""A training corpus: the embedded default (the standard library's source),
a raw file prepared once into the cache (and reused while its sources are
unchanged), or a prepared corpus, split into training and validation parts."""
from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorpusError, EnvironmentFailure
from ..fileio import cache_dir, cache_dirs, is_regular, writable_dir
from . import bpe, words
from .encoding import corpus_vocab, encoded_chunks
from .prepared import Prepared, is_prepared, load_prepared, metadata, prepare
from .sources import as_specs, expand_sources, source_signature
from .vocab import VOCAB_KINDS, VOCAB_SIZES, SymbolChars, Vocab, default_vocab_size

DEFAULT_CORPUS_CAP = 2_000_000  # characters of the embedded default corpus
IN_MEMORY_MAX_BYTES = 256 << 20  # with no writable cache, sources up to this size are prepared in memory


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
    data_file: str = ""  # a cached corpus's metadata file, and what to do if its data is damaged


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


def in_memory_bpe(text: str, size: int | None) -> tuple[Vocab, np.ndarray]:
    """A BPE vocabulary trained on `text`, and its ids."""
    pieces = bpe.batches(text)
    vocab = Vocab.from_bpe(bpe.train(iter([pieces]), size or default_vocab_size("bpe")))
    return vocab, bpe.encode_pieces(vocab.bpe_tokenizer, pieces, vocab.dtype)


def load_corpus(path, vocab_kind: str | None = "chars", val_fraction: float = 0.1,
                spare_cache: Path | None = None, include=(), exclude=(), vocab_size: int | None = None) -> Corpus:
    """The corpus at `path` (None: the embedded default), split into training
    and validation parts. Files are prepared once (see prepared.py) and read
    through a memory map; a prepared corpus (.json) is used as it is.
    `path` may be several files, directories and globs (`include`/`exclude`
    filter the files found in directories). `spare_cache`: where to prepare
    when no user cache directory is writable. `vocab_size`: of a word or BPE
    vocabulary (default vocab.VOCAB_SIZES)."""
    if vocab_kind not in (None, *VOCAB_KINDS):
        raise CorpusError(f"unknown vocabulary {vocab_kind!r}; choose {', '.join(VOCAB_KINDS)}")
    if path is None:
        return default_split(vocab_kind, val_fraction, vocab_size)
    specs = as_specs(path)
    if len(specs) == 1 and is_prepared(specs[0]):
        prepared = load_prepared(specs[0])
        prepared.origin = f"{specs[0]} (given)"
    else:
        prepared = prepared_for(specs, vocab_kind or "chars", spare_cache, include, exclude, vocab_size)
    if vocab_kind is not None and prepared.vocab.kind != vocab_kind:
        raise CorpusError(f"{path} was prepared with vocab={prepared.vocab.kind}, not {vocab_kind}")
    if vocab_size is not None and prepared.vocab.kind in VOCAB_SIZES and prepared.meta.get("vocab_size") != vocab_size:
        raise CorpusError(f"{path} was prepared with vocab_size={prepared.meta.get('vocab_size')}, "
                          f"not {vocab_size}")
    try:
        return split_prepared(prepared, specs, val_fraction)
    except CorpusError as exc:
        if not prepared.cached:
            raise CorpusError(f"{prepared.meta_path}: {exc}; prepare the corpus again") from None
        print(f"note: the cached corpus {prepared.meta_path} is damaged ({exc}); preparing it again",
              file=sys.stderr, flush=True)
    prepared = prepared_for(specs, vocab_kind or "chars", spare_cache, include, exclude, vocab_size, reuse=False)
    return split_prepared(prepared, specs, val_fraction)


def default_split(vocab_kind: str | None, val_fraction: float, vocab_size: int | None) -> Corpus:
    """The embedded default corpus, encoded in memory."""
    text, source = default_corpus()
    if vocab_kind == "words":
        vocab, ids, unknown = in_memory_words(text, vocab_size)
        return split(vocab, ids, val_fraction, source, unknown_lengths=unknown)
    if vocab_kind == "bpe":
        return split(*in_memory_bpe(text, vocab_size), val_fraction, source)
    vocab = Vocab.from_text(text) if vocab_kind != "bytes" else Vocab.bytes256()
    return split(vocab, vocab.encode(text), val_fraction, source)


def split_prepared(prepared: Prepared, specs: list[str], val_fraction: float) -> Corpus:
    sources = prepared.meta.get("sources", [])
    size = sum(int(src.get("size", 0)) for src in sources)
    what = " ".join(specs) + (f" ({len(sources)} files, {size:,} bytes)" if len(sources) > 1 else f" ({size:,} bytes)")
    corpus = split(prepared.vocab, prepared.ids, val_fraction, what, prepared.origin, prepared.unknown_lengths)
    if prepared.cached:  # a file the user never named: say which it is, and that it can go
        corpus.data_file = f"{prepared.meta_path}, a cached preparation of the corpus: delete it to prepare it again"
    return corpus


def cache_prefix(paths, kind: str, directory: Path | None = None, vocab_size: int | None = None) -> Path:
    if kind in VOCAB_SIZES:  # a size of its own: part of the key
        kind = f"{kind}{vocab_size or default_vocab_size(kind)}"
    key = hashlib.sha256(json.dumps([str(p.resolve()) for p in paths] + [kind]).encode()).hexdigest()[:16]
    return (directory or cache_dir()) / f"{paths[0].name}-{kind}-{key}"


def prepared_for(spec, kind: str, spare: Path | None = None, include=(), exclude=(),
                 vocab_size: int | None = None, reuse: bool = True) -> Prepared:
    """The prepared form of a raw corpus, made once and reused (`reuse`)
    while the sources are unchanged (size and modification time): from the
    first cache directory that holds it, else made in the first writable one,
    else (for sources up to IN_MEMORY_MAX_BYTES) prepared in memory. Whatever
    else is found where a cached corpus should be is prepared again."""
    paths = expand_sources(spec, include, exclude)
    dirs = cache_dirs(spare)
    for directory in dirs if reuse else ():
        prepared = cached(paths, kind, directory, vocab_size)
        if prepared is not None:
            return prepared
    for directory in dirs:
        if writable_dir(directory):
            prepared = load_prepared(prepare(paths, kind, cache_prefix(paths, kind, directory, vocab_size),
                                             vocab_size=vocab_size))
            prepared.origin, prepared.cached = f"made the cache {prepared.meta['data']} in {directory}", True
            return prepared
    size = sum(p.stat().st_size for p in paths)
    if size > IN_MEMORY_MAX_BYTES:
        tried = ", ".join(str(d) for d in dirs) or "none"
        raise EnvironmentFailure(f"no writable cache directory for preparing {spec} ({size:,} bytes; tried {tried}); "
                                 "set RNN_GPU_CACHE or run `rnn-gpu prepare` with -o")
    return prepare_in_memory(paths, kind, f"prepared in memory (no writable cache in {', '.join(map(str, dirs))})",
                             vocab_size)


def cached(paths, kind: str, directory: Path, vocab_size: int | None) -> Prepared | None:
    """The cache's prepared form of `paths` in `directory`, if it is whole and of these sources."""
    prefix = cache_prefix(paths, kind, directory, vocab_size)
    meta_path = prefix.with_name(prefix.name + ".json")
    if not is_regular(meta_path):
        return None
    try:
        prepared = load_prepared(meta_path)
    except CorpusError:
        return None  # damaged: prepared again
    if prepared.meta.get("sources") != source_signature(paths):
        return None
    prepared.origin, prepared.cached = f"reused the cache {meta_path}", True
    return prepared


def prepare_in_memory(paths, kind: str, origin: str, vocab_size: int | None = None) -> Prepared:
    vocab, how = corpus_vocab(paths, kind, vocab_size)
    unknown = [] if kind == "words" else None
    ids = np.concatenate([np.asarray(c, dtype=vocab.dtype) for c in encoded_chunks(paths, vocab, unknown)])
    lengths = None if unknown is None else np.concatenate([np.zeros(0, np.uint8), *unknown])
    top = int(ids.max()) if len(ids) else 0
    return Prepared(vocab, ids, metadata(vocab, len(ids), paths, top, how), origin, lengths)
