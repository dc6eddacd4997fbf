import numpy as np
import pytest

from rnn_gpu import CharRNN, get_backend
from rnn_gpu.data import CorpusError, Vocab
from rnn_gpu.sample import next_distribution, sample


@pytest.fixture
def model_and_vocab():
    vocab = Vocab.from_text("abcdefgh \n")
    return CharRNN(len(vocab), 16, get_backend("numpy"), dtype="float64", seed=4), vocab


def test_sampling_is_deterministic_per_seed(model_and_vocab):
    model, vocab = model_and_vocab
    a = sample(model, vocab, 200, seed=1)
    assert a == sample(model, vocab, 200, seed=1)
    assert a != sample(model, vocab, 200, seed=2)
    assert len(a) == 200 and set(a) <= set("abcdefgh \n")


def test_temperature_zero_is_argmax(model_and_vocab):
    model, vocab = model_and_vocab
    text = sample(model, vocab, 30, temperature=0, prime="ab", seed=1)
    assert text == sample(model, vocab, 30, temperature=0, prime="ab", seed=99)
    # replay with a plain loop
    p = {k: model.params[k] for k in "UWVbc"}
    h = np.zeros(16)
    for ch in "ab":
        h = np.tanh(p["U"][:, vocab.symbols.index(ord(ch))] + p["W"] @ h + p["b"])
    out = "ab"
    for _ in range(30):
        i = int(np.argmax(p["V"] @ h + p["c"]))
        out += chr(vocab.symbols[i])
        h = np.tanh(p["U"][:, i] + p["W"] @ h + p["b"])
    assert text == out


def test_top_k_keeps_only_the_k_largest(rng):
    logits = rng.normal(size=40)
    p = next_distribution(logits, 1.0, 5)
    assert (p > 0).sum() == 5
    assert set(np.flatnonzero(p)) == set(np.argsort(logits)[-5:])
    assert p.sum() == pytest.approx(1)


def test_prime_outside_vocabulary_is_named(model_and_vocab):
    model, vocab = model_and_vocab
    with pytest.raises(CorpusError, match="'z'.*'é'|'é'.*'z'"):
        sample(model, vocab, 10, prime="abzé")
