"""Text generation from a trained model: N independent samples generated
together, one symbol at a time (one GEMM per layer and symbol for all N)."""
from __future__ import annotations

import codecs
import sys

import numpy as np

from .checks import MAX_SEED, real_in, whole
from .data import words
from .data.vocab import Vocab, format_chars
from .errors import CorpusError, UsageError
from .layout import layer_names

# The options of sampling, as `sample` and `generate` take them.
OPTIONS = ("length", "temperature", "top_k", "top_p", "prime", "seed", "num_samples")


def check_options(length, temperature, top_k, prime, seed, num_samples, top_p) -> None:
    """The sampling options the CLI's flags check, for callers in Python: a
    UsageError naming the first bad one."""
    checks = [(whole(length, 1), "length= must be a whole number of at least 1"),
              (real_in(temperature, 0, 100), "temperature= must be a number in [0, 100]"),
              (top_k is None or whole(top_k, 1), "top_k= must be None or a whole number of at least 1"),
              (top_p is None or real_in(top_p, 0, 1, low_inclusive=False), "top_p= must be None or in (0, 1]"),
              (isinstance(prime, str), "prime= must be a string"),
              (whole(seed, 0, MAX_SEED), f"seed= must be a whole number in [0, {MAX_SEED}]"),
              (whole(num_samples, 1), "num_samples= must be a whole number of at least 1")]
    for ok, what in checks:
        if not ok:
            raise UsageError(what)


def next_distribution(logits: np.ndarray, temperature: float, top_k: int | None = None,
                      top_p: float | None = None) -> np.ndarray:
    """Probabilities (N, V) after temperature, top-k and top-p (nucleus).

    top-k keeps exactly k symbols, ties broken by the lower index; top-p keeps
    the smallest set of most likely symbols whose probability reaches p."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    z = logits / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    order = np.argsort(-logits, axis=1, kind="stable")  # most likely first; ties: lower index first
    keep = np.ones_like(p, dtype=bool)
    if top_k is not None and top_k < p.shape[1]:
        keep[np.arange(len(p))[:, None], order[:, top_k:]] = False
    if top_p is not None and top_p < 1:
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the more likely symbols
        outside = before >= top_p
        rows = np.arange(len(p))[:, None]
        keep[rows, order] &= ~outside
    p = np.where(keep, p, 0.0)
    return p / p.sum(axis=1, keepdims=True)


def choose(logits: np.ndarray, temperature: float, top_k: int | None, rng, top_p: float | None = None) -> np.ndarray:
    """One symbol per row of logits (N, V)."""
    logits = np.atleast_2d(logits)
    if temperature == 0:
        return np.argmax(logits, axis=1)
    p = next_distribution(logits, temperature, top_k, top_p)
    u = rng.random((len(p), 1))
    return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)


def step(model, symbols, h) -> None:
    """One time step of every layer for N streams: symbols (N,), h (L, N, H) in place."""
    xp, p = model.backend.xp, model.params
    symbols = xp.asarray(symbols)
    for k in range(1, model.layers + 1):
        U, W, b = (p[n] for n in layer_names(k))
        x = U.T[symbols] if k == 1 else h[k - 2] @ U.T
        h[k - 1] = xp.tanh(x + h[k - 1] @ W.T + b)


class Decoder:
    """Symbols to text as they come (bytes vocabularies: UTF-8 split across symbols waits)."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace") if vocab.kind == "bytes" else None

    def __call__(self, ids, final: bool = False) -> str:
        if self.utf8 is None:
            return self.vocab.decode(ids)
        return self.utf8.decode(bytes(int(i) for i in ids), final=final)


def encode_prime(vocab: Vocab, prime: str) -> np.ndarray:
    """The ids of `prime`. A character outside a character vocabulary is bad
    input; a word outside a word vocabulary becomes the unknown token, which
    is said once on stderr."""
    if not prime:
        return np.zeros(0, dtype=np.int64)
    try:
        ids = vocab.encode(prime)
    except CorpusError as exc:
        raise CorpusError(f"prime text has {exc}") from None
    if vocab.kind == "words" and (ids == words.UNKNOWN).any():
        tokens = words.tokenize(prime)
        unknown = sorted({t for t, i in zip(tokens, ids, strict=True) if i == words.UNKNOWN})
        print(f"note: the prime's {format_chars(unknown)} not in the vocabulary: the model reads the unknown "
              f"token ({words.UNKNOWN_MARKER}) instead", file=sys.stderr, flush=True)
    return ids


def generate(model, vocab: Vocab, length: int, *, temperature: float = 1.0, top_k: int | None = None,
             prime: str = "", seed: int = 0, num_samples: int = 1, top_p: float | None = None):
    """Yields (sample index, text) pieces: first the prime for every sample,
    then each generated symbol, decoded as it comes. Without a prime the first
    symbol is drawn from the output at h = 0."""
    xp, be = model.backend.xp, model.backend
    rng = np.random.default_rng(seed)
    prime_ids = encode_prime(vocab, prime)
    N = num_samples
    h = xp.zeros((model.layers, N, model.hidden_size), dtype=model.dtype)
    V, c = model.params["V"], model.params["c"]
    decoders = [Decoder(vocab) for _ in range(N)]
    for symbol in prime_ids:
        step(model, np.full(N, symbol), h)
    for i in range(N):
        yield i, decoders[i](prime_ids)
    for _ in range(length):
        logits = be.to_host(h[-1] @ V.T + c)
        symbols = choose(logits, temperature, top_k, rng, top_p)
        for i in range(N):
            yield i, decoders[i]([symbols[i]])
        step(model, symbols, h)
    for i in range(N):
        yield i, decoders[i]([], final=True)


def sample(model, vocab: Vocab | None = None, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
           prime: str = "", seed: int = 0, num_samples: int = 1, top_p: float | None = None):
    """`prime` followed by `length` generated symbols, decoded: one string,
    or a list of `num_samples` strings when more than one is asked for.
    `vocab` defaults to the one `rnn_gpu.load` attached to the model."""
    vocab = vocab or getattr(model, "vocab", None)
    if vocab is None:
        raise UsageError("sample needs the vocabulary: pass vocab=, or a model from rnn_gpu.load")
    check_options(length, temperature, top_k, prime, seed, num_samples, top_p)
    pieces = generate(model, vocab, length, temperature=temperature, top_k=top_k, prime=prime, seed=seed,
                      num_samples=num_samples, top_p=top_p)
    texts = collect(pieces, num_samples)
    return texts[0] if num_samples == 1 else texts


def collect(pieces, num_samples: int) -> list[str]:
    """The (sample index, text) pieces of `generate`, joined per sample."""
    texts = [""] * num_samples
    for i, piece in pieces:
        texts[i] += piece
    return texts
