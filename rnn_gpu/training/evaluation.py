"""Validation: the mean loss over the held-out part's evaluation windows,
per symbol and per character of the original text, split over the ranks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.streams import check_ids, evaluation_positions, evaluation_streams
from ..parallel import SingleCommunicator


@dataclass
class Evaluation:
    loss: float  # mean NLL per symbol predicted (nats)
    symbols: int  # symbols predicted
    loss_per_char: float  # the summed NLL over the characters of the original text those symbols cover
    chars: int


def evaluate(model, data, batch: int, seq: int, max_chars: int | None = None,
             comm=None, symbol_chars=None, data_file: str = "") -> Evaluation:
    """Mean NLL (nats) over the windows of `evaluation_windows` (all of
    `data`, or at most `max_chars` symbols of it), the hidden state carried
    across windows, per symbol and per character: `symbol_chars` indexed as
    `data` gives the characters each symbol covers (data.SymbolChars; None:
    one each). With a communicator, each rank takes its share of the
    streams and the sums are reduced."""
    comm = comm or SingleCommunicator()
    n_streams = evaluation_streams(len(data), batch, seq, max_chars)[0]
    mine = slice(comm.rank * n_streams // comm.size, (comm.rank + 1) * n_streams // comm.size)
    sums, h = np.zeros(3), None  # loss * symbols, symbols, characters
    for where in evaluation_positions(len(data), batch, seq, max_chars):
        window, targets = data[where[:, mine]], where[1:, mine]
        if window.shape[1] == 0:
            break
        check_ids(window, model.vocab_size, where[:, mine], "validation", data_file)  # this rank's streams
        if h is None:
            h = model.zero_state(window.shape[1])
        loss, h = model.loss(window[:-1], window[1:], h)
        chars = targets.size if symbol_chars is None else int(symbol_chars[targets.reshape(-1)].sum())
        sums += (loss * targets.size, targets.size, chars)
    comm.allreduce_sum_(sums)
    return Evaluation(float(sums[0] / sums[1]), int(sums[1]), float(sums[0] / max(sums[2], 1)), int(sums[2]))
