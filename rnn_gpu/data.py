"""Vocabularies, encoding and the batch streams (reading a corpus: corpus.py).

A corpus is encoded once into a compact integer array (uint8 when the
vocabulary has at most 256 symbols, else uint16, else uint32). Training reads
B contiguous streams over it, char-rnn style: window k of stream s covers
positions [s*L + k*T, s*L + k*T + T + 1) and the hidden state is carried from
one window to the next.

Each window read is checked against the vocabulary (`check_ids`): a
prepared corpus is never read whole at a start, so an id beyond the
vocabulary (a damaged or mismatched data file) is found where it is read.
"""
from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import words
from .errors import UsageError

VOCAB_KINDS = ("chars", "bytes", "words")


class CorpusError(UsageError, ValueError):
    """A corpus that cannot be used; the message says why."""


@dataclass(frozen=True)
class Vocab:
    kind: str  # "chars", "bytes" or "words"
    # code points (chars) or byte values (bytes), sorted; words: token strings by frequency, the unknown token first
    symbols: tuple

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls("chars", tuple(sorted({ord(ch) for ch in text})))

    @classmethod
    def bytes256(cls) -> Vocab:
        return cls("bytes", tuple(range(256)))

    @classmethod
    def from_words(cls, text: str, size: int = words.DEFAULT_VOCAB_SIZE) -> Vocab:
        """The unknown token and the size-1 most frequent tokens of `text` (words.py)."""
        return cls.from_tokens(words.tokenize(text), size)

    @classmethod
    def from_tokens(cls, tokens, size: int = words.DEFAULT_VOCAB_SIZE) -> Vocab:
        """As `from_words`, of text already tokenized."""
        return cls("words", words.choose_symbols(Counter(tokens), size))

    @classmethod
    def from_stored(cls, kind: str, stored) -> Vocab:
        """The vocabulary of `stored_symbols()`'s form (a checkpoint's array)."""
        if kind == "words":
            return cls(kind, tuple(json.loads(str(stored.item()))))
        return cls(kind, tuple(int(s) for s in stored))

    def stored_symbols(self) -> np.ndarray:
        """The symbols as one NumPy array: integers, or for words JSON text
        (a NumPy string array would drop a token's trailing NUL)."""
        if self.kind == "words":
            return np.array(json.dumps(list(self.symbols)))
        return np.array(self.symbols, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def valid(self) -> bool:
        """A kind we know and symbols strictly increasing within its range
        (what a vocabulary read back from a file must be)."""
        if self.kind == "words":
            return self._valid_words
        top = {"chars": 0x10FFFF, "bytes": 255}.get(self.kind)
        s = self.symbols
        return (top is not None and len(s) > 0 and all(isinstance(c, int) for c in s) and s[0] >= 0
                and s[-1] <= top and all(a < b for a, b in zip(s, s[1:], strict=False)))

    @property
    def _valid_words(self) -> bool:
        s = self.symbols
        return (len(s) > 0 and s[0] == words.UNKNOWN_SYMBOL and len(set(s)) == len(s)
                and all(words.is_token(t) for t in s[1:]))

    @property
    def dtype(self):
        n = len(self.symbols)
        return np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32

    @functools.cached_property
    def _id_table(self) -> np.ndarray:
        """Code point -> id, -1 for code points outside the vocabulary."""
        table = np.full(max(self.symbols) + 1, -1, dtype=np.int32)  # ids fit: at most 0x110000 symbols
        table[list(self.symbols)] = np.arange(len(self.symbols))
        return table

    @functools.cached_property
    def _byte_tables(self) -> tuple[bytes, bytes]:
        """(byte -> id, the bytes in the vocabulary) for bytes.translate: the
        fast path of encode_codes for single-byte codes and ids."""
        table = self._id_table[:256]
        inside = np.flatnonzero(table >= 0)
        ids = np.zeros(256, dtype=np.uint8)
        ids[inside] = table[inside]
        return ids.tobytes(), inside.astype(np.uint8).tobytes()

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """The ids of an array of code points; CorpusError names any outside."""
        if codes.dtype == np.uint8 and self.dtype == np.uint8:  # ASCII text or raw bytes: a byte translation
            raw, (to_ids, inside) = codes.tobytes(), self._byte_tables
            if not raw.translate(None, inside):  # nothing left once the vocabulary's bytes are deleted
                return np.frombuffer(raw.translate(to_ids), dtype=np.uint8)
        table = self._id_table
        if codes.size and int(codes.max()) >= len(table):
            ids = np.full(codes.shape, -1, dtype=np.int32)
            inside = codes < len(table)
            ids[inside] = table[codes[inside]]
        else:
            ids = table[codes]
        if (ids < 0).any():
            missing = sorted({chr(c) for c in codes[ids < 0]})
            raise CorpusError(f"characters not in the vocabulary: {format_chars(missing)}")
        return ids.astype(self.dtype)

    def encode_text(self, text: str) -> np.ndarray:
        return self.encode_codes(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))

    @functools.cached_property
    def _word_ids(self) -> dict:
        return {t: i for i, t in enumerate(self.symbols) if i != words.UNKNOWN}

    def encode_tokens(self, tokens) -> np.ndarray:
        """The ids of word tokens; a token outside the vocabulary is the unknown token (0)."""
        ids = map(self._word_ids.get, tokens, itertools.repeat(words.UNKNOWN))
        return np.fromiter(ids, dtype=self.dtype, count=len(tokens))

    def encode_words(self, tokens) -> tuple[np.ndarray, np.ndarray]:
        """The ids of word tokens, and the lengths (characters) of the tokens
        that became the unknown token, in order (what a loss per character counts)."""
        ids = self.encode_tokens(tokens)
        lengths = np.fromiter(map(len, tokens), dtype=np.uint8, count=len(tokens))
        return ids, lengths[ids == words.UNKNOWN]

    def encode(self, data) -> np.ndarray:
        if self.kind == "words":
            return self.encode_tokens(words.tokenize(data))
        if self.kind == "bytes":
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            return np.frombuffer(raw, dtype=np.uint8).copy()
        return self.encode_text(data)

    def decode(self, ids) -> str:
        """Text of ids; the unknown token of a word vocabulary shows as words.UNKNOWN_MARKER."""
        if self.kind == "bytes":
            return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
        if self.kind == "words":
            return "".join(self.symbols[int(i)] or words.UNKNOWN_MARKER for i in ids)
        return "".join(chr(self.symbols[int(i)]) for i in ids)

    @functools.cached_property
    def symbol_chars(self) -> np.ndarray:
        """Characters of the original text each id stands for: 1 for chars;
        for bytes 1 for a byte that starts a UTF-8 character, 0 for a
        continuation byte; for words the token's length, 0 for the unknown
        token (whose length the corpus keeps, see SymbolChars)."""
        if self.kind == "bytes":
            return ((np.arange(256) & 0xC0) != 0x80).astype(np.int64)
        if self.kind == "words":
            return np.array([len(t) for t in self.symbols], dtype=np.int64)
        return np.ones(len(self.symbols), dtype=np.int64)


class SymbolChars:
    """The characters of the original text that each symbol of `ids` covers,
    indexed as `ids` is (chars[index]). `unknown_lengths`: for a word
    vocabulary, the lengths of the tokens that unknown ids replaced, in order,
    in a text that ends with `ids` (its last ones are those of `ids`; None:
    an unknown token counts 0)."""

    def __init__(self, vocab: Vocab, ids, unknown_lengths=None):
        self.ids, self.table = ids, vocab.symbol_chars
        self.unknown_at = self.unknown_lengths = None
        if vocab.kind == "words" and unknown_lengths is not None:
            self.unknown_at = positions_of(ids, words.UNKNOWN)
            if len(self.unknown_at) > len(unknown_lengths):
                raise CorpusError(f"{len(self.unknown_at)} unknown tokens but {len(unknown_lengths)} lengths")
            tail = len(unknown_lengths) - len(self.unknown_at)
            self.unknown_lengths = np.asarray(unknown_lengths[tail:], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index)
        ids = np.asarray(self.ids[index])
        chars = self.table[ids]
        if self.unknown_at is not None:
            unknown = ids == words.UNKNOWN
            chars[unknown] = self.unknown_lengths[np.searchsorted(self.unknown_at, index[unknown])]
        return chars


def positions_of(ids, value: int, chunk: int = 1 << 23) -> np.ndarray:
    """Where `ids` (a memory map, perhaps) holds `value`, read in chunks."""
    found = [np.flatnonzero(np.asarray(ids[i:i + chunk]) == value) + i for i in range(0, len(ids), chunk)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def format_chars(chars) -> str:
    return ", ".join(repr(c) for c in chars)


def check_ids(ids, vocab_size: int, index=None, part: str = "training") -> None:
    """A CorpusError naming the corpus offset of the first id in `ids` at or
    beyond `vocab_size`; `index[...]` is each id's offset in its part (None:
    `ids` is the whole part). One comparison of a window: cheap."""
    if int(ids.max()) < vocab_size:
        return
    first = int((ids >= vocab_size).ravel().argmax())
    offset = first if index is None else int(index.ravel()[first])
    raise CorpusError(f"the corpus holds symbol id {int(ids.ravel()[first])} at offset {offset:,} of its {part} "
                      f"part, beyond its vocabulary of {vocab_size} symbols (a damaged or mismatched data file)")


class BatchStream:
    """B contiguous streams over `data`, read T+1 positions at a time.

    `next()` returns (window, reset): window is a (T+1, B) integer array
    (inputs are rows 0..T-1, targets rows 1..T) and reset is True when the
    streams wrapped, so the caller must zero the hidden state. With
    `vocab_size`, ids are checked against it: each window read on the host,
    or the whole of `data` once when it lies on a device (no host round
    trip per step).
    """

    def __init__(self, data, batch: int, seq: int, position: int = 0, xp=np, streams: slice = slice(None),
                 vocab_size: int | None = None):
        self.stream_len = len(data) // batch
        if self.stream_len < seq + 1:
            raise CorpusError(
                f"training part has {len(data)} symbols, too short for --batch {batch} "
                f"streams of --seq {seq} (needs at least {batch * (seq + 1)})"
            )
        self.data, self.batch, self.seq = data, batch, seq
        # `streams`: the ones this process reads, of the same B-stream layout (xp: where `data` lives)
        self.starts = (xp.arange(batch) * self.stream_len)[streams]
        self.offsets = xp.arange(seq + 1)[:, None]
        self.position = position
        self.check_windows = vocab_size if xp is np else None
        if vocab_size is not None and xp is not np:
            check_ids(data, vocab_size)

    def next(self):
        reset = self.position == 0
        index = self.starts[None, :] + self.position + self.offsets
        window = self.data[index]
        if self.check_windows is not None:
            check_ids(window, self.check_windows, index)
        self.position += self.seq
        if self.position + self.seq + 1 > self.stream_len:
            self.position = 0
        return window, reset

    @property
    def symbols_per_step(self) -> int:
        """Of all B streams, whichever of them this process reads."""
        return self.batch * self.seq


def evaluation_streams(length: int, batch: int, seq: int, max_chars: int | None = None) -> tuple[int, int, int]:
    """(streams, spacing, stream_len) of an evaluation over `length` symbols:
    up to `batch` streams starting `spacing` apart, each `stream_len` long.
    Without a cap (None or 0, or a cap at least `length`) they tile the
    whole part; with one, they are the same evenly spaced windows every time,
    `streams * stream_len <= max_chars` symbols in all."""
    budget = length if not max_chars else min(length, max(2, max_chars))  # at least one prediction
    n_streams = max(1, min(batch, (budget - 1) // seq))
    return n_streams, length // n_streams, budget // n_streams


def evaluation_windows(data: np.ndarray, batch: int, seq: int, max_chars: int | None = None):
    """Yields (T'+1, B') arrays in order over the streams of
    `evaluation_streams`, windows of at most seq+1 (the last may be shorter);
    the hidden state is carried from one window to the next."""
    for where in evaluation_positions(len(data), batch, seq, max_chars):
        yield data[where]


def evaluation_positions(length: int, batch: int, seq: int, max_chars: int | None = None):
    """The positions in the part that `evaluation_windows` reads, window by window."""
    n_streams, spacing, stream_len = evaluation_streams(length, batch, seq, max_chars)
    starts = np.arange(n_streams) * spacing
    for pos in range(0, stream_len - 1, seq):
        steps = min(seq, stream_len - 1 - pos)
        yield starts[None, :] + pos + np.arange(steps + 1)[:, None]
