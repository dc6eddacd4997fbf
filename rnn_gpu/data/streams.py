"""The batch streams of training and the windows of evaluation.

Training reads B contiguous streams over the encoded corpus, char-rnn style:
window k of stream s covers positions [s*L + k*T, s*L + k*T + T + 1) and the
hidden state is carried from one window to the next.

Each window read is checked against the vocabulary (`check_ids`): a
prepared corpus is never read whole at a start, so an id beyond the
vocabulary (a damaged or mismatched data file) is found where it is read.
"""
from __future__ import annotations

import numpy as np

from ..errors import CorpusError


def check_ids(ids, vocab_size: int, index=None, part: str = "training", data_file: str = "") -> None:
    """A CorpusError naming the corpus offset of the first id in `ids` at or
    beyond `vocab_size`; `index[...]` is each id's offset in its part (None:
    `ids` is the whole part), `data_file` what holds them. One comparison of
    a window: cheap."""
    if int(ids.max()) < vocab_size:
        return
    first = int((ids >= vocab_size).ravel().argmax())
    offset = first if index is None else int(index.ravel()[first])
    raise CorpusError(f"the corpus holds symbol id {int(ids.ravel()[first])} at offset {offset:,} of its {part} "
                      f"part, beyond its vocabulary of {vocab_size} symbols (a damaged or mismatched data file"
                      f"{': ' + data_file if data_file else ''})")


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
                 vocab_size: int | None = None, data_file: str = ""):
        self.stream_len = len(data) // batch
        if self.stream_len < seq + 1:
            raise CorpusError(
                f"training part has {len(data)} symbols, too short for batch={batch} "
                f"streams of seq={seq} (needs at least {batch * (seq + 1)})"
            )
        self.data, self.batch, self.seq = data, batch, seq
        # `streams`: the ones this process reads, of the same B-stream layout (xp: where `data` lives)
        self.starts = (xp.arange(batch) * self.stream_len)[streams]
        self.offsets = xp.arange(seq + 1)[:, None]
        self.position, self.data_file = position, data_file
        self.check_windows = vocab_size if xp is np else None
        if vocab_size is not None and xp is not np:
            check_ids(data, vocab_size, data_file=data_file)

    def next(self):
        reset = self.position == 0
        index = self.starts[None, :] + self.position + self.offsets
        window = self.data[index]
        if self.check_windows is not None:
            check_ids(window, self.check_windows, index, data_file=self.data_file)
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
