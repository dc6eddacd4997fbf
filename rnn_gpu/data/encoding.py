"""The passes over a corpus's sources: the first chooses the vocabulary
(the sorted set of code points for characters; for words the most frequent
tokens, counted in bounded memory; for bpe a byte-level BPE trained on the
text as it streams), the second encodes the text to ids."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from ..errors import CorpusError
from . import bpe, words
from .sources import decoded_chunks, read_chunks, text_pieces, word_tokens
from .vocab import Vocab, default_vocab_size

COUNT_CAPACITY = 1 << 19  # distinct tokens a word count keeps exactly (it holds up to twice as many)


def collect_code_points(paths) -> Vocab:
    seen = np.zeros(0x110000, dtype=bool)
    for path in paths:
        for codes in decoded_chunks(path):
            seen[codes] = True
    return Vocab("chars", tuple(int(c) for c in np.flatnonzero(seen)))


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


def bpe_texts(paths):
    """The text of each file in turn, in lists of short pieces cut where the
    BPE pre-tokenizer cuts anyway (bpe.whole_pieces; none spans two files)."""
    for path in paths:
        for text in bpe.whole_pieces(text_pieces(path)):
            yield bpe.batches(text)


def train_bpe(paths, size: int) -> tuple[Vocab, dict]:
    """The byte-level BPE vocabulary of `size` tokens (at most) trained on
    the sources, streamed, and what PREFIX.json says of it. A corpus of more
    than bpe.TRAIN_BYTES trains on every k-th piece of bpe_texts, evenly
    spread over it, k the least that brings it within the bound."""
    bpe.library("vocab=bpe")  # before any file is read
    every = max(1, -(-sum(p.stat().st_size for p in paths) // bpe.TRAIN_BYTES))
    text = bpe.train(itertools.islice(bpe_texts(paths), 0, None, every), size)
    try:
        vocab = Vocab.from_bpe(text)
    except ValueError as exc:  # the library's own output: not expected
        raise CorpusError(f"the BPE tokenizer trained on {', '.join(map(str, paths))} is unusable: {exc}") from None
    return vocab, {"tokenizer": bpe.TOKENIZER, "vocab_size": size, "tokenizers_version": bpe.library_version(),
                   "trained_on_every": every}


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
    if vocab.kind == "bpe":
        for texts in bpe_texts(paths):
            yield bpe.encode_pieces(vocab.bpe_tokenizer, texts, vocab.dtype)
        return
    if vocab.kind == "bytes":
        for path in paths:
            for chunk in read_chunks(path):
                yield np.frombuffer(chunk, dtype=np.uint8)
        return
    for path in paths:
        for codes in decoded_chunks(path):
            yield vocab.encode_codes(codes)  # raises if a source changed between the two passes


def corpus_vocab(paths, kind: str, vocab_size: int | None = None) -> tuple[Vocab, dict]:
    """The vocabulary of the sources (a first pass over them for chars and
    words), and what PREFIX.json records of how it was made."""
    if kind == "words":
        vocab, how = count_words(paths, vocab_size or default_vocab_size(kind))
    elif kind == "bpe":
        vocab, how = train_bpe(paths, vocab_size or default_vocab_size(kind))
    else:
        vocab, how = collect_code_points(paths) if kind == "chars" else Vocab.bytes256(), {}
    if not vocab.symbols:
        raise CorpusError(f"corpus is empty: {', '.join(map(str, paths))}")
    return vocab, how
