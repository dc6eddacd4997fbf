"""Vocabularies: the symbols of a model (characters, bytes, word tokens or
byte-level BPE tokens), text to ids and back, and how many characters of the
original text each id stands for (what a loss per character counts).

A corpus is encoded once into a compact integer array: uint8 when the
vocabulary has at most 256 symbols, else uint16, else uint32.
"""
from __future__ import annotations

import codecs
import functools
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import CorpusError, UsageError
from . import bpe, words

VOCAB_KINDS = ("chars", "bytes", "words", "bpe")
# The kinds whose size is chosen (characters and bytes have theirs from the text): (default, least, most).
VOCAB_SIZES = {"words": (words.DEFAULT_VOCAB_SIZE, 2, words.MAX_VOCAB_SIZE),
               "bpe": (bpe.DEFAULT_VOCAB_SIZE, bpe.MIN_VOCAB_SIZE, words.MAX_VOCAB_SIZE)}
VOCAB_SIZE_HELP = ("--vocab words: the unknown token and the N-1 most frequent tokens, N from 2; --vocab bpe: the "
                   f"256 bytes and N-256 merged byte sequences, N from {bpe.MIN_VOCAB_SIZE} (either to "
                   f"{words.MAX_VOCAB_SIZE:,})")
# What not giving a size means (the defaults agree: one number, as the synopsis of docs/cli.md shows it).
VOCAB_SIZE_ABSENT = (str(words.DEFAULT_VOCAB_SIZE) if {d for d, _, _ in VOCAB_SIZES.values()} == {
    words.DEFAULT_VOCAB_SIZE} else ", ".join(f"{kind} {d}" for kind, (d, _, _) in VOCAB_SIZES.items()))


def check_vocab_size(kind: str | None, size, name: str = "vocab_size") -> None:
    """A vocabulary size goes with a word or BPE vocabulary alone, within its
    kind's bounds (VOCAB_SIZES; the setting's declaration takes the widest)."""
    if size is None:
        return
    if kind not in VOCAB_SIZES:
        raise UsageError(f"{name}= goes with vocab=words or vocab=bpe")
    _, low, high = VOCAB_SIZES[kind]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not low <= size <= high:
        raise UsageError(f"{name}= must be a whole number in [{low}, {high}] for vocab={kind}, got {size!r}")


def default_vocab_size(kind: str) -> int:
    return VOCAB_SIZES[kind][0]


@dataclass(frozen=True)
class Vocab:
    kind: str  # "chars", "bytes", "words" or "bpe"
    # code points (chars) or byte values (bytes), sorted; words: token strings by frequency, the unknown token first;
    # bpe: the tokens (strings of bpe.BYTE_CHARS) in id order
    symbols: tuple
    tokenizer: str = field(default="", repr=False)  # bpe: the tokenizer's JSON, as `tokenizers` wrote it

    @classmethod
    def from_bpe(cls, text, written_by: str | None = None) -> Vocab:
        """The BPE vocabulary of a tokenizer's JSON (bpe.train's), checked as
        bpe.check checks it: a ValueError says what is wrong. `written_by`:
        the version of `tokenizers` that wrote it, if known (for the message)."""
        symbols, tokenizer = bpe.check(text, written_by)
        vocab = cls("bpe", symbols, text)
        vocab.__dict__["bpe_tokenizer"] = tokenizer  # loaded once
        return vocab

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
        if kind == "bpe":
            return cls.from_bpe(str(stored.item()))
        return cls(kind, tuple(int(s) for s in stored))

    def stored_symbols(self) -> np.ndarray:
        """The symbols as one NumPy array: integers, for words JSON text (a
        NumPy string array would drop a token's trailing NUL), for bpe the
        tokenizer's JSON (a string array: the symbols follow from it)."""
        if self.kind == "words":
            return np.array(json.dumps(list(self.symbols)))
        if self.kind == "bpe":
            return np.array(self.tokenizer)
        return np.array(self.symbols, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def valid(self) -> bool:
        """A kind we know and symbols strictly increasing within its range
        (what a vocabulary read back from a file must be)."""
        if self.kind == "words":
            return self._valid_words
        if self.kind == "bpe":
            return len(self.symbols) > 0 and self._bpe_symbols == self.symbols
        top = {"chars": 0x10FFFF, "bytes": 255}.get(self.kind)
        s = self.symbols
        return (top is not None and len(s) > 0 and all(isinstance(c, int) for c in s) and s[0] >= 0
                and s[-1] <= top and all(a < b for a, b in zip(s, s[1:], strict=False)))

    @property
    def _valid_words(self) -> bool:
        s = self.symbols
        return (len(s) > 0 and s[0] == words.UNKNOWN_SYMBOL and len(set(s)) == len(s)
                and all(words.is_token(t) for t in s[1:]))

    @functools.cached_property
    def _bpe_symbols(self) -> tuple | None:
        """The tokens the tokenizer's JSON lists, None if it is not one of ours."""
        try:
            return bpe.symbols_of(self.tokenizer)
        except ValueError:
            return None

    @functools.cached_property
    def bpe_tokenizer(self):
        """The library's Tokenizer of a BPE vocabulary."""
        return bpe.load(self.tokenizer)

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

    def outside(self, codes: np.ndarray) -> np.ndarray:
        """Where in an array of code points (chars) or byte values (bytes) a symbol outside the vocabulary is."""
        table = self._id_table
        codes = np.asarray(codes, dtype=np.int64)
        inside = (codes >= 0) & (codes < len(table))
        inside[inside] = table[codes[inside]] >= 0
        return np.flatnonzero(~inside)

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

    def encode_bpe(self, text: str) -> np.ndarray:
        """The ids of text without lone surrogates (a corpus's, decoded from UTF-8)."""
        return bpe.encode_text(self.bpe_tokenizer, text, self.dtype)

    def encode(self, data, name: str = "text") -> np.ndarray:
        """The ids of `data`. bpe: any str; a lone surrogate U+DC80..U+DCFF is
        the raw byte it stands for (surrogateescape), another a CorpusError
        that names it and its position, as `name` says (e.g. "prime=")."""
        if self.kind == "words":
            return self.encode_tokens(words.tokenize(data))
        if self.kind == "bpe":
            return bpe.encode_any(self.bpe_tokenizer, data, self.dtype, name)
        if self.kind == "bytes":
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            return np.frombuffer(raw, dtype=np.uint8).copy()
        return self.encode_text(data)

    def decode(self, ids) -> str:
        """Text of ids; the unknown token of a word vocabulary shows as
        words.UNKNOWN_MARKER; bytes and bpe: bytes that are not UTF-8 as U+FFFD."""
        if self.kind in ("bytes", "bpe"):
            return self.id_bytes(ids).decode("utf-8", errors="replace")
        if self.kind == "words":
            return "".join(self.symbols[int(i)] or words.UNKNOWN_MARKER for i in ids)
        return "".join(chr(self.symbols[int(i)]) for i in ids)

    @functools.cached_property
    def token_bytes(self) -> tuple[bytes, ...]:
        """bytes and bpe: the bytes each id stands for."""
        if self.kind == "bpe":
            return tuple(bpe.token_bytes(t) for t in self.symbols)
        if self.kind == "bytes":
            return tuple(bytes([b]) for b in self.symbols)
        raise ValueError(f"a {self.kind} vocabulary has no bytes of its own")

    def id_bytes(self, ids) -> bytes:
        """bytes and bpe: the bytes of a sequence of ids."""
        if self.kind == "bytes":
            return bytes(int(i) for i in ids)
        table = self.token_bytes
        return b"".join(table[int(i)] for i in ids)

    def text_decoder(self) -> TextDecoder:
        """A fresh decoder of ids as they come (see TextDecoder)."""
        return TextDecoder(self)

    @functools.cached_property
    def symbol_chars(self) -> np.ndarray:
        """Characters of the original text each id stands for: 1 for chars;
        for bytes 1 for a byte that starts a UTF-8 character, 0 for a
        continuation byte, and for bpe the number of such bytes among the
        token's, so the characters of a text are the sum over its ids; for
        words the token's length, 0 for the unknown token (whose length the
        corpus keeps, see SymbolChars)."""
        if self.kind == "bytes":
            return ((np.arange(256) & 0xC0) != 0x80).astype(np.int64)
        if self.kind == "bpe":
            return np.array([sum((b & 0xC0) != 0x80 for b in t) for t in self.token_bytes], dtype=np.int64)
        if self.kind == "words":
            return np.array([len(t) for t in self.symbols], dtype=np.int64)
        return np.ones(len(self.symbols), dtype=np.int64)


class TextDecoder:
    """Ids to text as they come, `decoder(ids, final=False) -> str`, the
    pieces joining into what Vocab.decode gives of all the ids at once: chars
    symbol by symbol, words as Vocab.decode; bytes and bpe through an
    incremental UTF-8 decoder, so a character whose bytes are split across ids
    waits for the rest (bytes that are not UTF-8 as U+FFFD; `final` ends a
    character left open)."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        incremental = codecs.getincrementaldecoder("utf-8")
        self.utf8 = incremental(errors="replace") if vocab.kind in ("bytes", "bpe") else None

    def __call__(self, ids, final: bool = False) -> str:
        if self.utf8 is None:
            return self.vocab.decode(ids)
        return self.utf8.decode(self.vocab.id_bytes(ids), final=final)


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
