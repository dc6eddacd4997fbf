"""Word vocabularies: the tokenizer, the choice of the vocabulary, prepared
word corpora, the loss per character, gradients at a large vocabulary, and
the command line's checks."""
import json
from collections import Counter

import numpy as np
import pytest
from helpers import assert_usage_error, make_corpus_text
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_gpu import CharRNN
from rnn_gpu.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnn_gpu.cli import main
from rnn_gpu.data import SymbolChars, Vocab, encoding, sources, words
from rnn_gpu.data.corpus import load_corpus, split
from rnn_gpu.data.prepared import load_prepared, prepare
from rnn_gpu.model import init_params
from rnn_gpu.training import evaluate

TEXT = st.text(st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_tokens_join_back_to_the_text(text):
    tokens = words.tokenize(text)
    assert "".join(tokens) == text
    assert all(0 < len(t) <= words.MAX_TOKEN_CHARS and words.is_token(t) for t in tokens)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_decode_of_encode_is_the_text_when_every_token_is_known(text):
    vocab = Vocab.from_words(text, len(set(words.tokenize(text))) + 1)
    ids = vocab.encode(text)
    assert (ids != words.UNKNOWN).all()
    assert vocab.decode(ids) == text
    assert vocab.valid


@settings(max_examples=200, deadline=None)
@given(TEXT, st.lists(st.integers(0, 300), max_size=6))
def test_text_in_pieces_tokenizes_as_the_whole(text, cuts):
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert [t for tokens in words.tokens_of_pieces(pieces) for t in tokens] == words.tokenize(text)


def test_long_runs_are_cut_and_unknown_tokens_show_the_marker():
    text = "a" * 150 + " " * 70 + "!?"
    assert [len(t) for t in words.tokenize(text)] == [64, 64, 22, 64, 6, 1, 1]
    vocab = Vocab.from_words(text, 3)  # the 64 a's (twice), then of the ties the smallest: six spaces
    assert vocab.symbols == (words.UNKNOWN_SYMBOL, "a" * 64, " " * 6)
    assert vocab.decode(vocab.encode(text)) == "a" * 128 + words.UNKNOWN_MARKER * 2 + " " * 6 + words.UNKNOWN_MARKER * 2


def reference_top(tokens, size):
    """Independent of words.ranked: the size-1 largest counts, and among the
    tokens at the smallest count kept, the smallest by code points."""
    counts = Counter(tokens)
    kept_counts = sorted(counts.values(), reverse=True)[:size - 1]
    if not kept_counts:
        return set()
    boundary = kept_counts[-1]
    above = {t for t, c in counts.items() if c > boundary}
    at = sorted(t for t, c in counts.items() if c == boundary)
    return above | set(at[:size - 1 - len(above)])


def zipf_text(rng, n_tokens, distinct):
    ranks = np.minimum(rng.zipf(1.3, size=n_tokens), distinct)
    return " ".join(f"w{r}" if r % 7 else f"W{r}," for r in ranks)


@pytest.mark.parametrize("size", [2, 5, 50, 400])
def test_the_vocabulary_is_the_most_frequent_tokens(rng, size):
    text = zipf_text(rng, 3000, 300)
    vocab = Vocab.from_words(text, size)
    chosen = vocab.symbols[1:]
    assert set(chosen) == reference_top(words.tokenize(text), size)
    counts = Counter(words.tokenize(text))
    ordered = zip(chosen, chosen[1:], strict=False)
    assert all(counts[a] > counts[b] or (counts[a] == counts[b] and a < b) for a, b in ordered)


@pytest.mark.parametrize("capacity", [40, 200, 5000])
def test_bounded_counts_keep_their_guarantee(rng, capacity):
    tokens = words.tokenize(zipf_text(rng, 20_000, 3000))
    counted = words.BoundedCounter(capacity)
    for start in range(0, len(tokens), 997):
        counted.update(tokens[start:start + 997])
    true = Counter(tokens)
    assert counted.error <= len(tokens) / (capacity + 1)
    assert all(true[t] - counted.error <= c <= true[t] for t, c in counted.counts.items())
    assert all(t in counted.counts for t, c in true.items() if c > counted.error)
    assert (counted.error == 0) == (len(true) <= 2 * capacity)


def write_corpus(tmp_path, rng, n_tokens=30_000, distinct=2000):
    text = zipf_text(rng, n_tokens, distinct) + " café ünïcode\n" * 3
    path = tmp_path / "words.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


@pytest.mark.parametrize("capacity", [None, 100])
def test_a_prepared_word_corpus_reads_back_as_the_text_encoded_in_memory(tmp_path, rng, monkeypatch, capacity):
    path, text = write_corpus(tmp_path, rng)
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1000)  # tokens split across reads
    if capacity:
        monkeypatch.setattr(encoding, "COUNT_CAPACITY", capacity)  # the pruning counter and its recount
    size = 300
    prepared = load_prepared(prepare(path, "words", tmp_path / "p", vocab_size=size))
    reference = Vocab.from_words(text, size)
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["tokenizer"] == words.TOKENIZER and meta["vocab_size"] == size
    assert (meta["count_error"] > 0) == bool(capacity)
    if meta["vocab_exact"]:
        assert prepared.vocab == reference
    else:  # the pruning bound could not prove the choice: still the most frequent candidates
        assert len(prepared.vocab) == size
    np.testing.assert_array_equal(prepared.ids, prepared.vocab.encode(text))
    tokens = words.tokenize(text)
    ids = np.asarray(prepared.ids)
    assert list(prepared.unknown_lengths) == [len(t) for t, i in zip(tokens, ids, strict=True) if i == 0]
    assert prepared.ids.dtype == np.uint16


def test_exact_vocabulary_after_pruning(tmp_path, rng, monkeypatch):
    """Capacity well above the vocabulary: the recount proves the choice exact."""
    path, text = write_corpus(tmp_path, rng, n_tokens=40_000, distinct=5000)
    monkeypatch.setattr(encoding, "COUNT_CAPACITY", 300)
    prepared = load_prepared(prepare(path, "words", tmp_path / "p", vocab_size=10))
    assert prepared.meta["count_error"] > 0 and prepared.meta["vocab_exact"]
    assert set(prepared.vocab.symbols[1:]) == reference_top(words.tokenize(text), 10)


def plain_loss_per_char(model, ids, chars_of, starts, length):
    """Each evaluation stream alone, one symbol at a time from h = 0."""
    nll, chars = 0.0, 0
    for s in starts:
        h = model.zero_state(1)
        for t in range(s, s + length - 1):
            loss, h = model.loss(ids[t:t + 1, None], ids[t + 1:t + 2, None], h)
            nll += loss
            chars += chars_of[t + 1]
    return nll / chars


def test_loss_per_char_against_a_plain_loop(numpy_backend, rng):
    text = zipf_text(rng, 600, 80) + " " + "".join(chr(c) for c in rng.integers(0x400, 0x4ff, 50))
    vocab = Vocab.from_words(text, 30)
    tokens = words.tokenize(text)
    ids = vocab.encode_tokens(tokens)
    unknown = [len(t) for t, i in zip(tokens, ids, strict=True) if i == 0]
    corpus = split(vocab, ids, 0.5, "test", unknown_lengths=unknown)
    model = CharRNN(len(vocab), 6, numpy_backend, dtype="float64", seed=int(rng.integers(1 << 30)))
    got = evaluate(model, corpus.val, 3, 7, 0, symbol_chars=corpus.val_symbol_chars)
    val_tokens = tokens[len(tokens) - len(corpus.val):]
    from rnn_gpu.data import evaluation_streams
    n, spacing, length = evaluation_streams(len(corpus.val), 3, 7, 0)
    expected = plain_loss_per_char(model, np.asarray(corpus.val), [len(t) for t in val_tokens],
                                   [i * spacing for i in range(n)], length)
    assert got.loss_per_char == pytest.approx(expected, rel=1e-10)
    assert got.chars == sum(len(val_tokens[i * spacing + t]) for i in range(n) for t in range(1, length))


def test_bytes_loss_is_per_character(numpy_backend, rng):
    text = "".join(rng.choice(list("aé€😀 \n"), size=400))
    raw = text.encode()
    vocab = Vocab.bytes256()
    ids = vocab.encode(raw)
    model = CharRNN(256, 5, numpy_backend, dtype="float64", seed=1)
    got = evaluate(model, ids, 1, 50, 0, symbol_chars=SymbolChars(vocab, ids))
    assert got.chars == len(raw[1:].decode("utf-8", errors="ignore"))  # the first character's start is no target
    assert got.loss_per_char == pytest.approx(got.loss * got.symbols / got.chars, rel=1e-12)


def test_gradients_at_a_large_vocabulary(numpy_backend, rng):
    """Finite differences at V = 8000 with H = 3, on a sample of each parameter's elements."""
    V, H, T, B = 8000, 3, 4, 3
    model = CharRNN(V, H, numpy_backend, dtype="float64", seed=int(rng.integers(1 << 30)))
    for p in model.params.values():
        p[...] = rng.uniform(-0.8, 0.8, size=p.shape)
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    inputs[0, :2] = 17  # a repeated input: its column of U sums two contributions
    targets[1, 0] = inputs[1, 1]
    h0 = rng.uniform(-0.5, 0.5, size=(B, H))
    _, grads, _ = model.loss_and_grads(inputs, targets, h0)
    grads = {k: g.copy() for k, g in grads.items()}
    picks = {"U": [(j, int(c)) for j in range(H) for c in (*inputs.ravel()[:4], 5)],
             "V": [(int(r), j) for r in (*targets.ravel()[:4], 7) for j in range(H)],
             "c": [(int(r),) for r in (*targets.ravel()[:4], 7)], "W": list(np.ndindex(H, H)),
             "b": [(j,) for j in range(H)]}
    eps = 1e-5  # the loss is about log(8000): a smaller step loses the difference to rounding
    for k, where in picks.items():
        for i in where:
            old = model.params[k][i]
            model.params[k][i] = old + eps
            up = model.loss(inputs, targets, h0)[0]
            model.params[k][i] = old - eps
            down = model.loss(inputs, targets, h0)[0]
            model.params[k][i] = old
            assert grads[k][i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9), (k, i)


def test_word_checkpoints_round_trip(tmp_path, rng):
    vocab = Vocab("words", (words.UNKNOWN_SYMBOL, "\x00", "the", " ", "\n\n"))
    ckpt = Checkpoint(params={k: v.astype(np.float32) for k, v in init_params(len(vocab), 4, 0).items()},
                      vocab=vocab, config={"hidden": 4})
    save_checkpoint(tmp_path / "c.npz", ckpt)
    assert load_checkpoint(tmp_path / "c.npz").vocab == vocab


def old_checkpoint(path, vocab_kind, symbols, V, H=4):
    """A checkpoint as the format had it before word vocabularies (written by hand)."""
    params = {k: v.astype(np.float32) for k, v in init_params(V, H, 0).items()}
    np.savez(path, **params, format=np.array("rnn_gpu.checkpoint/1"), vocab_kind=np.array(vocab_kind),
             vocab_symbols=np.array(symbols, dtype=np.int64), config=np.array(json.dumps({"hidden": H})),
             step=np.array(3), position=np.array(0), elapsed_s=np.array(1.0))


@pytest.mark.parametrize("kind,symbols", [("chars", [10, 32, 97, 98, 0x263A]), ("bytes", list(range(256)))])
def test_old_checkpoints_load_unchanged(tmp_path, kind, symbols):
    old_checkpoint(tmp_path / "old.npz", kind, symbols, len(symbols))
    loaded = load_checkpoint(tmp_path / "old.npz")
    assert loaded.vocab == Vocab(kind, tuple(symbols)) and loaded.step == 3


@pytest.mark.parametrize("kind", ["chars", "bytes"])
def test_old_prepared_corpora_load_unchanged(tmp_path, kind):
    text = "héllo wörld\n" * 20
    raw = text.encode()
    vocab = Vocab.from_text(text) if kind == "chars" else Vocab.bytes256()
    ids = vocab.encode(text)
    (tmp_path / "old.bin").write_bytes(ids.tobytes())
    meta = {"format": "rnn_gpu.corpus/1", "vocab_kind": kind, "symbols": list(vocab.symbols),
            "dtype": np.dtype(vocab.dtype).name, "length": len(ids), "data": "old.bin",
            "sources": [{"path": "x", "size": len(raw), "mtime_ns": 0}]}
    (tmp_path / "old.json").write_text(json.dumps(meta))
    corpus = load_corpus(tmp_path / "old.json", None, 0.25)
    assert corpus.vocab == vocab
    np.testing.assert_array_equal(np.concatenate([corpus.train, corpus.val]), ids)


def test_a_foreign_tokenizer_is_refused(tmp_path, rng):
    path, _ = write_corpus(tmp_path, rng, n_tokens=500)
    meta_path = prepare(path, "words", tmp_path / "p", vocab_size=50)
    meta = json.loads(meta_path.read_text())
    meta["tokenizer"] = "rnn_gpu.words/0"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(Exception, match="tokenizer"):
        load_prepared(meta_path)


@pytest.mark.parametrize("key, value", [("unknown_data", None), ("unknown_count", "many")])
def test_a_word_corpus_with_damaged_metadata_is_bad_input(tmp_path, rng, capsys, key, value):
    path, _ = write_corpus(tmp_path, rng, n_tokens=500)
    meta_path = prepare(path, "words", tmp_path / "p", vocab_size=50)
    meta = json.loads(meta_path.read_text())
    meta[key] = value
    if value is None:
        del meta[key]
    meta_path.write_text(json.dumps(meta))
    assert_usage_error(capsys, ["train", str(meta_path), "--out", str(tmp_path / "run")],
                       "not a prepared rnn_gpu corpus")


def test_train_and_sample_words(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_corpus_text(20_000), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", str(corpus), "--vocab", "words", "--vocab-size", "10", "--out", str(out), "--steps", "6",
                 "--eval-every", "3", "--hidden", "8", "--batch", "4", "--seq", "8", "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "val_loss" in r]
    assert evaluated and all(r["val_loss_per_char"] < r["val_loss"] for r in evaluated)  # words are longer than 1
    capsys.readouterr()
    assert main(["sample", str(out), "--length", "20", "--seed", "1", "--prime", "the zebra"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"the {words.UNKNOWN_MARKER}")
    assert captured.err.count("'zebra'") == 1


@pytest.mark.parametrize("argv,fragment", [
    (["--vocab", "words", "--vocab-size", "0"], "--vocab-size"),
    (["--vocab", "words", "--vocab-size", "1"], "--vocab-size"),
    (["--vocab", "words", "--vocab-size", str(10**12)], "--vocab-size"),
    (["--vocab", "words", "--vocab-size", "many"], "--vocab-size"),
    (["--vocab", "chars", "--vocab-size", "100"], "--vocab-size goes with --vocab words"),
    (["--vocab-size", "100"], "--vocab-size goes with --vocab words"),
])
def test_bad_vocab_sizes(capsys, corpus_file, tmp_path, argv, fragment):
    assert_usage_error(capsys, ["train", str(corpus_file), "--out", str(tmp_path / "r"), *argv], fragment)
    assert not (tmp_path / "r").exists()


def test_prepare_refuses_a_size_without_words(capsys, corpus_file, tmp_path):
    assert_usage_error(capsys, ["prepare", str(corpus_file), "--vocab-size", "10", "-o", str(tmp_path / "p")],
                       "--vocab-size")
    assert_usage_error(capsys, ["prepare", str(corpus_file), "--vocab", "words", "--vocab-size", "0"], "--vocab-size")
    assert not list(tmp_path.glob("p*"))


def test_the_default_corpus_in_words_counts_its_characters():
    """Split into parts, the validation symbols cover exactly the characters of the text they encode."""
    from rnn_gpu.data.corpus import default_corpus

    corpus = load_corpus(None, "words", 0.1, vocab_size=500)
    tokens = words.tokenize(default_corpus()[0])
    val_tokens = tokens[len(tokens) - len(corpus.val):]
    chars = corpus.val_symbol_chars[np.arange(len(corpus.val))]
    assert chars.tolist() == [len(t) for t in val_tokens]
    assert (np.asarray(corpus.val) == words.UNKNOWN).any()  # the unknown lengths were used
