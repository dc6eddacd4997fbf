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


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = np.array([1.0, 3.0, 3.0, 3.0, 0.5, 3.0])
    p = next_distribution(logits, 1.0, top_k=2)[0]
    assert (p > 0).sum() == 2 and set(np.flatnonzero(p)) == {1, 2}  # ties: the lower indices


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([0.05, 0.5, 0.3, 0.15])
    logits = np.log(probs)
    p = next_distribution(logits, 1.0, top_p=0.75)[0]
    assert set(np.flatnonzero(p)) == {1, 2}  # 0.5 + 0.3 reaches 0.75; 0.5 alone does not
    np.testing.assert_allclose(p[[1, 2]], [0.5 / 0.8, 0.3 / 0.8])
    assert set(np.flatnonzero(next_distribution(logits, 1.0, top_p=0.5)[0])) == {1}
    assert set(np.flatnonzero(next_distribution(logits, 1.0, top_p=0.8000001)[0])) == {1, 2, 3}


def test_samples_in_a_batch_follow_the_distribution(model_and_vocab):
    """Many samples generated together: the first symbol's frequencies match the model's distribution."""
    from rnn_gpu.sample import choose

    model, vocab = model_and_vocab
    logits = np.array([0.0, 1.0, 2.0, 0.5])
    rng = np.random.default_rng(0)
    picks = choose(np.tile(logits, (20000, 1)), 1.0, None, rng.random(20000))
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(np.bincount(picks, minlength=4) / 20000, expected, atol=0.015)
    greedy = sample(model, vocab, 25, temperature=0, prime="ab", num_samples=3)
    assert greedy == [sample(model, vocab, 25, temperature=0, prime="ab")] * 3


@pytest.mark.parametrize("layers", [1, 3])
def test_the_stepper_computes_what_the_plain_step_does(rng, layers):
    """The sampler's buffered step against the plain reference, bit for bit."""
    from rnn_gpu import TextRNN
    from rnn_gpu.sample import Stepper, step

    model = TextRNN(11, 7, "numpy", layers=layers, seed=int(rng.integers(1000)))
    stepper, h = Stepper(model, 5), np.zeros((layers, 5, 7), dtype=np.float32)
    for _ in range(4):
        symbols = rng.integers(0, 11, size=5)
        step(model, symbols, h)
        stepper(symbols)
        assert np.array_equal(stepper.h, h)
        logits = h[-1] @ model.params["V"].T + model.params["c"]
        assert np.array_equal(stepper.logits(), logits)


@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"top_p": 0.5, "temperature": 0.7}, {"temperature": 0}])
def test_samples_drawn_together_are_the_text_generate_streams(model_and_vocab, options):
    from rnn_gpu.sample import generate

    model, vocab = model_and_vocab
    texts = sample(model, vocab, length=30, prime="ab", seed=4, num_samples=3, **options)
    streamed = [""] * 3
    for i, piece in generate(model, vocab, 30, prime="ab", seed=4, num_samples=3, **options):
        streamed[i] += piece
    assert texts == streamed and all(t.startswith("ab") and len(t) == 32 for t in texts)


@pytest.mark.parametrize("options", [{}, {"top_k": 4, "temperature": 0.8}, {"temperature": 0}])
def test_streams_sampled_in_groups_on_threads_give_the_text_of_one_group(rng, options):
    """Groups of streams on threads of their own (CpuBackend with two
    threads) draw what one group does, stream for stream, over several
    blocks of steps and a length that ends inside one."""
    from rnn_gpu import TextRNN
    from rnn_gpu.backends import CpuBackend
    from rnn_gpu.data import Vocab
    from rnn_gpu.sample import BLOCK_STEPS, MIN_GROUP_STREAMS, generate, stream_threads

    vocab, seed = Vocab("chars", tuple(range(97, 97 + 13))), int(rng.integers(1000))
    one, two = (TextRNN(13, 24, CpuBackend(threads=t), layers=2, seed=seed) for t in (1, 2))
    n, length = 2 * MIN_GROUP_STREAMS + 3, 2 * BLOCK_STEPS + 7
    assert stream_threads(two, n)[1] == 2 and stream_threads(one, n)[1] == 1
    texts = sample(two, vocab, length, prime="ab", seed=seed, num_samples=n, **options)
    assert texts == sample(one, vocab, length, prime="ab", seed=seed, num_samples=n, **options)
    streamed = [""] * n
    for i, piece in generate(two, vocab, length, prime="ab", seed=seed, num_samples=n, **options):
        streamed[i] += piece
    assert streamed == texts and all(len(t) == length + 2 for t in texts)
