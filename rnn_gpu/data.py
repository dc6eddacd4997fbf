"""Vocabularies, encoding and the batch streams (reading a corpus: corpus.py).

A corpus is encoded once into a compact integer array (uint8 when the
vocabulary has at most 256 symbols, else uint16, else uint32). Training reads
B contiguous streams over it, char-rnn style: window k of stream s covers
positions [s*L + k*T, s*L + k*T + T + 1) and the hidden state is carried from
one window to the next.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

VOCAB_KINDS = ("chars", "bytes")


class CorpusError(UsageError, ValueError):
    """A corpus that cannot be used; the message says why."""


@dataclass(frozen=True)
class Vocab:
    kind: str  # "chars" or "bytes"
    symbols: tuple  # code points (chars) or byte values (bytes), sorted

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls("chars", tuple(sorted({ord(ch) for ch in text})))

    @classmethod
    def bytes256(cls) -> Vocab:
        return cls("bytes", tuple(range(256)))

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def valid(self) -> bool:
        """A kind we know and symbols strictly increasing within its range
        (what a vocabulary read back from a file must be)."""
        top = {"chars": 0x10FFFF, "bytes": 255}.get(self.kind)
        s = self.symbols
        return (top is not None and len(s) > 0 and all(isinstance(c, int) for c in s) and s[0] >= 0
                and s[-1] <= top and all(a < b for a, b in zip(s, s[1:], strict=False)))

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

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """The ids of an array of code points; CorpusError names any outside."""
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

    def encode(self, data) -> np.ndarray:
        if self.kind == "bytes":
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            return np.frombuffer(raw, dtype=np.uint8).copy()
        return self.encode_text(data)

    def decode(self, ids) -> str:
        if self.kind == "bytes":
            return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
        return "".join(chr(self.symbols[int(i)]) for i in ids)


def format_chars(chars) -> str:
    return ", ".join(repr(c) for c in chars)


class BatchStream:
    """B contiguous streams over `data`, read T+1 positions at a time.

    `next()` returns (window, reset): window is a (T+1, B) integer array
    (inputs are rows 0..T-1, targets rows 1..T) and reset is True when the
    streams wrapped, so the caller must zero the hidden state.
    """

    def __init__(self, data, batch: int, seq: int, position: int = 0, xp=np, streams: slice = slice(None)):
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

    def next(self):
        reset = self.position == 0
        window = self.data[self.starts[None, :] + self.position + self.offsets]
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
    n_streams, spacing, stream_len = evaluation_streams(len(data), batch, seq, max_chars)
    starts = np.arange(n_streams) * spacing
    for pos in range(0, stream_len - 1, seq):
        steps = min(seq, stream_len - 1 - pos)
        yield data[starts[None, :] + pos + np.arange(steps + 1)[:, None]]
