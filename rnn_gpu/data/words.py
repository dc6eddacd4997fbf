"""The word tokenizer of `--vocab words`, and the choice of its vocabulary.

Text splits into tokens that lose nothing: runs of word characters (`\\w`:
letters, digits, underscore, in any script), runs of whitespace, and every
other character on its own (punctuation, symbols). A run longer than
MAX_TOKEN_CHARS is cut into pieces of that length from its start, so a token
is never longer than that. Joining the tokens gives the text back.

Where a token ends depends only on the two characters either side of the
boundary and on the distance from the start of its run, so text read in
pieces tokenizes as the whole does when each piece's last token is held back
and put in front of the next piece (`tokens_of_pieces`).

The vocabulary of size N is the unknown token (id 0) and the N-1 most
frequent tokens (ids 1.. in order of frequency); ties are broken by the
tokens' code points (the smaller string first), so the choice is the same on
every run and machine.
"""
from __future__ import annotations

import re
from collections import Counter

TOKENIZER = "rnn_gpu.words/1"  # recorded with every word vocabulary; a different tokenizer refuses to load it
MAX_TOKEN_CHARS = 64  # fits the uint8 lengths kept for unknown tokens
UNKNOWN = 0  # the id of the unknown token
UNKNOWN_SYMBOL = ""  # how the unknown token is stored among the symbols: no token is empty
UNKNOWN_MARKER = "\u2047"  # ⁇, what decoded text shows for an unknown token
DEFAULT_VOCAB_SIZE = 8000
MAX_VOCAB_SIZE = 1 << 20

_TOKEN = re.compile(rf"\w{{1,{MAX_TOKEN_CHARS}}}|\s{{1,{MAX_TOKEN_CHARS}}}|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """The tokens of `text`, in order; "".join(tokenize(text)) == text."""
    return _TOKEN.findall(text)


def tokens_of_pieces(pieces):
    """Lists of the tokens of text arriving in pieces (strings), the same
    tokens as tokenize("".join(pieces)) in the same order."""
    held = ""
    for piece in pieces:
        tokens = tokenize(held + piece)
        held = tokens.pop() if tokens else ""
        if tokens:
            yield tokens
    if held:
        yield [held]


def is_token(symbol) -> bool:
    """A string the tokenizer makes as one token."""
    return isinstance(symbol, str) and tokenize(symbol) == [symbol]


def ranked(counts) -> list[str]:
    """The tokens of a {token: count} mapping, most frequent first, ties by code points."""
    return sorted(counts, key=lambda token: (-counts[token], token))


def choose_symbols(counts, size: int) -> tuple:
    """The symbols of a vocabulary of `size`: the unknown token, then the
    size-1 most frequent tokens of `counts`."""
    return (UNKNOWN_SYMBOL, *ranked(counts)[:size - 1])


class BoundedCounter:
    """Token counts in bounded memory (Misra-Gries, pruned in batches).

    Counts are exact until more than 2 * `capacity` distinct tokens are held;
    then every count drops by the (capacity+1)-th largest and tokens at zero
    or below go. Each prune by d removes at least d * (capacity+1) of the n
    tokens counted, so the total pruned, `error`, is at most n / (capacity+1),
    and every held count is at most `error` below the true count: a token
    whose true count exceeds `error` is always held. `error` == 0 means the
    counts are exact.
    """

    def __init__(self, capacity: int):
        self.capacity, self.counts, self.error, self.total = int(capacity), Counter(), 0, 0

    def update(self, tokens) -> None:
        self.counts.update(tokens)
        self.total += len(tokens)
        if len(self.counts) > 2 * self.capacity:
            self.prune()

    def prune(self) -> None:
        values = sorted(self.counts.values(), reverse=True)
        cut = values[self.capacity]  # the (capacity+1)-th largest
        self.error += cut
        self.counts = Counter({t: c - cut for t, c in self.counts.items() if c > cut})


def exact_top(counted: BoundedCounter, recount, size: int) -> tuple[tuple, bool]:
    """The symbols of a vocabulary of `size` from a BoundedCounter, and
    whether they are exactly the most frequent tokens. When the counter
    pruned, `recount(candidates)` must return the exact counts of the held
    tokens (a second pass); the choice is exact when the (size-1)-th largest
    exact count exceeds `error`, since every token missing from the candidates
    has a true count of at most `error`."""
    if counted.error == 0:
        return choose_symbols(counted.counts, size), True
    exact = recount(set(counted.counts))
    symbols = choose_symbols(exact, size)
    last = exact[symbols[-1]] if len(symbols) > 1 else 0
    return symbols, len(symbols) == size and last > counted.error
