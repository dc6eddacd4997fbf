import numpy as np
import pytest

from rnn_gpu.data import BatchStream, CorpusError, Vocab, evaluation_windows
from rnn_gpu.data.corpus import load_corpus


def test_char_vocab_is_sorted_code_points_and_compact():
    vocab = Vocab.from_text("héllo wörld ✓")
    assert list(vocab.symbols) == sorted(set(map(ord, "héllo wörld ✓")))
    ids = vocab.encode("wörld")
    assert ids.dtype == np.uint8
    assert vocab.decode(ids) == "wörld"
    big = Vocab.from_text("".join(chr(0x4E00 + i) for i in range(300)))
    assert big.encode(chr(0x4E00 + 299)).dtype == np.uint16


def test_encoding_matches_a_plain_lookup(rng):
    text = "".join(rng.choice(list("abcxyz \n€🙂"), size=500))
    vocab = Vocab.from_text(text)
    expected = [vocab.symbols.index(ord(ch)) for ch in text]
    assert vocab.encode(text).tolist() == expected


def test_byte_vocab_takes_any_file(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 3)
    corpus = load_corpus(path, "bytes", val_fraction=0.25)
    assert len(corpus.vocab) == 256
    assert corpus.train.dtype == np.uint8
    assert np.concatenate([corpus.train, corpus.val]).tolist() == list(range(256)) * 3
    assert len(corpus.val) == 192


def test_invalid_utf8_names_the_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello \xff world")
    with pytest.raises(CorpusError, match="byte offset 6.*vocab=bytes"):
        load_corpus(path, "chars")


def test_batch_stream_windows_and_reset():
    data = np.arange(100, dtype=np.uint16)
    stream = BatchStream(data, batch=4, seq=5)  # streams of 25: windows at 0, 5, 10, 15
    windows = [stream.next() for _ in range(5)]
    assert [reset for _, reset in windows] == [True, False, False, False, True]
    first = windows[0][0]
    assert first.shape == (6, 4)
    assert first[:, 2].tolist() == list(range(50, 56))
    assert windows[1][0][:, 0].tolist() == list(range(5, 11))  # consecutive, sharing one symbol
    assert windows[3][0][:, 3].tolist() == list(range(90, 96))


def test_batch_stream_too_short():
    with pytest.raises(CorpusError, match="too short"):
        BatchStream(np.arange(20), batch=4, seq=5)


@pytest.mark.parametrize("n,batch,seq", [(100, 4, 5), (37, 8, 10), (12, 3, 50), (2, 1, 1)])
def test_evaluation_covers_every_transition_once(n, batch, seq):
    data = np.arange(n)
    pairs = []
    for w in evaluation_windows(data, batch, seq):
        pairs += list(zip(w[:-1].ravel(), w[1:].ravel(), strict=True))
    assert len(pairs) == len(set(pairs))
    assert all(b == a + 1 for a, b in pairs)
    assert len(pairs) >= n - 1 - batch  # at most one symbol per stream left over
