"""Text generation from a trained model, one symbol at a time."""
from __future__ import annotations

import numpy as np

from .data import CorpusError, Vocab


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
    U, W, V, b, c = (model.params[k] for k in ("U", "W", "V", "b", "c"))
    rng = np.random.default_rng(seed)
    try:
        prime_ids = vocab.encode(prime) if prime else np.zeros(0, dtype=np.int64)
    except CorpusError as exc:
        raise CorpusError(f"prime text has {exc}") from None
    h = xp.zeros(model.hidden_size, dtype=model.dtype)

    def step(symbol):
        return xp.tanh(U[:, int(symbol)] + W @ h + b)

    for symbol in prime_ids:
        h = step(symbol)
    out = []
    for _ in range(length):
        logits = be.to_host(V @ h + c)
        symbol = choose(logits, temperature, top_k, rng)
        out.append(symbol)
        h = step(symbol)
    return vocab.decode(list(prime_ids) + out)

