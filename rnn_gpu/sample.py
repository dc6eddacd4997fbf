"""Text generation from a trained model, one symbol at a time."""
from __future__ import annotations

import numpy as np

from .data import CorpusError, Vocab
from .layout import layer_names


def next_distribution(logits: np.ndarray, temperature: float, top_k: int | None) -> np.ndarray:
    """Probabilities over the vocabulary after temperature and top-k."""
    logits = logits.astype(np.float64)
    if top_k is not None and top_k < logits.size:
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    z = logits / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def choose(logits: np.ndarray, temperature: float, top_k: int | None, rng) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    p = next_distribution(logits, temperature, top_k)
    return int(rng.choice(p.size, p=p))


def sample(model, vocab: Vocab, length: int, temperature: float = 1.0, top_k: int | None = None,
           prime: str = "", seed: int = 0) -> str:
    """Returns `prime` followed by `length` generated symbols, decoded.

    The prime text is fed through the network first; without one the first
    symbol is drawn from the output at h = 0.
    """
    xp, be = model.backend.xp, model.backend
    rng = np.random.default_rng(seed)
    try:
        prime_ids = vocab.encode(prime) if prime else np.zeros(0, dtype=np.int64)
    except CorpusError as exc:
        raise CorpusError(f"prime text has {exc}") from None
    h = xp.zeros((model.layers, model.hidden_size), dtype=model.dtype)
    V, c = model.params["V"], model.params["c"]
    for symbol in prime_ids:
        step(model, symbol, h)
    out = []
    for _ in range(length):
        logits = be.to_host(V @ h[-1] + c)
        symbol = choose(logits, temperature, top_k, rng)
        out.append(symbol)
        step(model, symbol, h)
    return vocab.decode(list(prime_ids) + out)


def step(model, symbol: int, h) -> None:
    """One time step of every layer for one stream, h (L, H) in place."""
    xp, p = model.backend.xp, model.params
    for k in range(1, model.layers + 1):
        U, W, b = (p[n] for n in layer_names(k))
        x = U[:, int(symbol)] if k == 1 else U @ h[k - 2]
        h[k - 1] = xp.tanh(x + W @ h[k - 1] + b)
