"""Byte-level BPE vocabularies (`--vocab bpe`, rnn_gpu/data/bpe.py): exact
round trips of any text, encoding in chunks as the whole text, characters per
token, prepared and cached corpora, training, sampling and resuming, the
tokenizer kept in checkpoints and exports and checked when read back, the
vocabulary size's bounds, and a missing library."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error, make_corpus_text, one_error, whole_and_resumed

tokenizers = pytest.importorskip("tokenizers")

import rnn_gpu  # noqa: E402
from rnn_gpu.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from rnn_gpu.cli import main  # noqa: E402
from rnn_gpu.data import bpe, evaluation_positions, sources  # noqa: E402
from rnn_gpu.data.corpus import cache_prefix, load_corpus  # noqa: E402
from rnn_gpu.data.prepared import load_prepared, prepare  # noqa: E402
from rnn_gpu.data.vocab import Vocab, check_vocab_size  # noqa: E402
from rnn_gpu.errors import CheckpointError, CorpusError, UsageError  # noqa: E402
from rnn_gpu.export import mapping  # noqa: E402
from rnn_gpu.model import init_params  # noqa: E402
from rnn_gpu.training import TrainConfig  # noqa: E402

SMALL = ["--hidden", "12", "--batch", "4", "--seq", "8", "--quiet", "--backend", "numpy"]
LETTERS = list("abcdefghijklmnopqrstuvwxyzABCXYZ") + list("éèßøåЖждλπ中文字한국") + ["e\u0301", "\U0001F600"]
SPACES = [" "] * 12 + ["\n"] * 4 + ["  ", "\t", "\r\n", " \n", "\n\n", "\xa0", "\u3000", "\x1c", "\x85", "\u2028"]
OTHERS = list(".,;:!?\"-()[]/&0123456789½²") + ["'s", "'t", "'re", "'ll", "...", "—", "\x00", "\x7f"]


def random_text(rng, n_pieces: int = 3000) -> str:
    """Words of a few scripts, whitespace of many kinds, punctuation and
    contractions, digits, and now and then any code point but a surrogate."""
    words = ["".join(rng.choice(LETTERS, size=rng.integers(1, 7))) for _ in range(200)]
    parts = []
    for _ in range(n_pieces):
        r = rng.random()
        if r < 0.5:
            parts.append(str(rng.choice(words)))
        elif r < 0.8:
            parts.append(str(rng.choice(SPACES)))
        elif r < 0.98:
            parts.append(str(rng.choice(OTHERS)))
        else:
            code = int(rng.integers(0, 0x110000 - 0x800))
            parts.append(chr(code + 0x800 if code >= 0xD800 else code))
    return "".join(parts)


def trained(text: str, size: int = 400) -> Vocab:
    return Vocab.from_bpe(bpe.train(iter([bpe.batches(text)]), size))


@pytest.fixture
def vocab(rng):
    return trained(random_text(rng))


def write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def pre_tokens(text: str) -> list[str]:
    return [p for p, _ in tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]


# -- the tokenizer ---------------------------------------------------------------
def test_the_byte_characters_are_the_librarys_alphabet(rng):
    assert len(set(bpe.BYTE_CHARS)) == 256
    assert set(bpe.BYTE_CHARS) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    text = random_text(rng, 500)
    assert "".join(pre_tokens(text)) == "".join(bpe.BYTE_CHARS[b] for b in text.encode("utf-8"))


def test_encode_then_decode_gives_any_text_back(vocab, rng):
    assert vocab.valid and len(vocab) == 400 and vocab.dtype == np.uint16
    for text in (random_text(rng), bytes(rng.integers(0, 256, 3000, dtype=np.uint8)).decode("latin-1"),
                 "", " ", "\n\n", "x", "中文字" * 50, "\U0010FFFF\x00 'll"):
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text
        assert int(vocab.symbol_chars[ids].sum()) == len(text)  # the characters a per-character loss counts
        assert ids.tolist() == vocab.bpe_tokenizer.encode(text).ids  # the library's encoding of the whole


def test_any_ids_decode_and_a_decoder_as_they_come_agrees(vocab, rng):
    ids = rng.integers(0, len(vocab), 500)
    text = vocab.decode(ids)
    assert text == vocab.bpe_tokenizer.decode(ids.tolist())  # partial UTF-8 replaced as the library does
    for kind_vocab in (vocab, Vocab.bytes256()):
        ids = rng.integers(0, len(kind_vocab), 400)
        decoder = kind_vocab.text_decoder()
        cuts = sorted(rng.integers(0, len(ids), 30).tolist())
        pieces = [decoder(ids[a:b]) for a, b in zip([0, *cuts], [*cuts, len(ids)], strict=True)]
        assert "".join(pieces) + decoder([], final=True) == kind_vocab.decode(ids)
    split = vocab.encode("é")  # one character, two bytes: in one token or two
    decoder = vocab.text_decoder()
    assert "".join(decoder([i]) for i in split) == "é"
    for kind_vocab, text in ((Vocab.from_text("abc"), "cab"), (trained("a b c"), "a b")):
        decoder = kind_vocab.text_decoder()
        assert "".join(decoder([i]) for i in kind_vocab.encode(text)) == text


def test_lone_surrogates_are_raw_bytes_or_named(vocab, rng):
    raw = bytes(rng.integers(0, 256, 200, dtype=np.uint8)) + "é中".encode() + b"\xff\xfe"
    text = raw.decode("utf-8", "surrogateescape")  # as a command line's argument arrives
    ids = vocab.encode(text)
    assert vocab.id_bytes(ids) == raw
    assert vocab.decode(ids) == raw.decode("utf-8", errors="replace")
    assert vocab.id_bytes(vocab.encode("x\udcc3\udca9y")) == "xéy".encode()  # escaped bytes that are UTF-8
    for bad, at in (("ab\ud800c", 2), ("\udc80\ude00", 1), ("é\U0001F600\udbff", 2)):
        with pytest.raises(CorpusError, match=re.escape(f"prime= has U+{ord(bad[at]):04X} (a lone surrogate) at "
                                                        f"position {at}")):
            vocab.encode(bad, name="prime=")


def test_whole_pieces_cut_where_the_pre_tokenizer_does(rng):
    text = random_text(rng, 2000)
    cuts = sorted(rng.integers(0, len(text), 60).tolist())
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    out = list(bpe.whole_pieces(pieces))
    assert "".join(out) == text and all(out)
    assert [t for piece in out for t in pre_tokens(piece)] == pre_tokens(text)
    short = bpe.batches(text, 50)
    assert "".join(short) == text and [t for piece in short for t in pre_tokens(piece)] == pre_tokens(text)
    assert list(bpe.whole_pieces(["abc", "def", " gh", "i"])) == ["abcdef", " ghi"]  # a cut where two meet


# -- prepared corpora --------------------------------------------------------------
@pytest.mark.parametrize("chunk", [7, 64, None])
def test_a_corpus_read_in_chunks_encodes_as_the_whole_text(tmp_path, rng, monkeypatch, chunk):
    text = random_text(rng, 4000)
    path = write(tmp_path, text)
    whole = trained(text, 500)
    if chunk:
        monkeypatch.setattr(sources, "CHUNK_BYTES", chunk)  # characters and pieces split across reads
        monkeypatch.setattr(bpe, "BATCH_CHARS", int(rng.integers(5, 40)))
    prepared = load_prepared(prepare(path, "bpe", tmp_path / "p", vocab_size=500))
    assert prepared.vocab == whole  # the same tokenizer, to its JSON
    assert np.asarray(prepared.ids).tolist() == whole.bpe_tokenizer.encode(text).ids
    assert prepared.vocab.decode(prepared.ids) == text
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["vocab_kind"] == "bpe" and meta["tokenizer"] == bpe.TOKENIZER and meta["vocab_size"] == 500
    assert "symbols" not in meta and meta["tokenizers_version"] == tokenizers.__version__
    assert tokenizers.Tokenizer.from_str(meta["tokenizer_json"]).get_vocab_size() == 500


def test_a_corpus_over_the_training_bound_trains_on_evenly_spread_pieces(tmp_path, rng, monkeypatch):
    """Seven files of words of their own letters, the bound a little over
    two of them: the trainer sees files 0, 3 and 6 (every 3rd piece), as
    training on just those texts does, and merges no letters of the others;
    every file still encodes losslessly."""
    alphabets = ["abcdef", "ghijkl", "mnopqr", "stuvwx", "ABCDEF", "GHIJKL", "MNOPQR"]
    texts = [" ".join("".join(rng.choice(list(a), size=rng.integers(2, 6))) for _ in range(300)) + "\n"
             for a in alphabets]
    paths = [write(tmp_path, t, f"{i}.txt") for i, t in enumerate(texts)]
    monkeypatch.setattr(bpe, "TRAIN_BYTES", sum(len(t) for t in texts) // 3 + 1)
    prepared = load_prepared(prepare(paths, "bpe", tmp_path / "p", vocab_size=600))
    assert prepared.vocab == trained("".join(texts[::3]), 600) != trained("".join(texts), 600)
    assert json.loads((tmp_path / "p.json").read_text())["trained_on_every"] == 3
    merged = [set(t.lstrip(bpe.BYTE_CHARS[32])) for t in prepared.vocab.symbols if len(t) > 1]
    assert not any(m <= set(alphabets[i]) for m in merged if m for i in (1, 2, 4, 5))
    assert any(m <= set(alphabets[3]) for m in merged if m)
    assert prepared.vocab.decode(prepared.ids) == "".join(texts)


def test_a_token_never_spans_two_files(tmp_path, rng):
    first, second = random_text(rng, 300) + "abc", "def " + random_text(rng, 300)
    paths = [write(tmp_path, first, "a.txt"), write(tmp_path, second, "b.txt")]
    prepared = load_prepared(prepare(paths, "bpe", tmp_path / "p", vocab_size=300))
    tokenizer = prepared.vocab.bpe_tokenizer
    assert np.asarray(prepared.ids).tolist() == tokenizer.encode(first).ids + tokenizer.encode(second).ids


def test_the_cache_key_holds_the_size_and_a_damaged_cache_is_made_again(tmp_path, rng, capsys):
    path = write(tmp_path, make_corpus_text(5000) + " café ünïcode")
    a, b = (cache_prefix([path], "bpe", tmp_path, size) for size in (300, 301))
    assert a != b and "bpe300" in a.name and cache_prefix([path], "bpe", tmp_path).name.count("bpe8000") == 1
    corpus = load_corpus(path, "bpe", 0.1, vocab_size=300)
    assert "made the cache" in corpus.prepared and len(corpus.vocab) <= 300
    meta_path = Path(corpus.data_file.split(",")[0])
    meta = json.loads(meta_path.read_text())
    meta["tokenizer_json"] = meta["tokenizer_json"][:-10]
    meta_path.write_text(json.dumps(meta))
    again = load_corpus(path, "bpe", 0.1, vocab_size=300)
    assert "made the cache" in again.prepared and again.vocab == corpus.vocab
    assert load_corpus(path, "bpe", 0.1, vocab_size=300).prepared.startswith("reused")
    with pytest.raises(CorpusError, match="vocab_size=300, not 301"):
        load_corpus(meta_path, "bpe", 0.1, vocab_size=301)


@pytest.mark.parametrize("damage,fragment", [
    (lambda m: m.update(tokenizer_json=m["tokenizer_json"][:500]), "not JSON"),
    (lambda m: m.update(tokenizer_json=m["tokenizer_json"].replace('"version":"1.0"', '"version":"9.9"')),
     "Unknown tokenizer version '9.9'"),
    (lambda m: m.update(tokenizer_json=m["tokenizer_json"].replace('"type":"BPE"', '"type":"WordPiece"')),
     "not BPE"),
    (lambda m: m.update(tokenizer="rnn_gpu.bpe/0"), "not this version's rnn_gpu.bpe/1"),
    (lambda m: m.pop("tokenizer_json"), "not JSON text"),
])
def test_a_damaged_tokenizer_in_a_prepared_corpus_is_one_error(tmp_path, capsys, damage, fragment):
    meta_path = prepare(write(tmp_path, make_corpus_text(3000)), "bpe", tmp_path / "p", vocab_size=300)
    meta = json.loads(meta_path.read_text())
    damage(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match=re.escape(fragment)):
        load_prepared(meta_path)
    line = assert_usage_error(capsys, ["train", str(meta_path), "--out", str(tmp_path / "run"), *SMALL], fragment)
    assert str(meta_path) in line and "Traceback" not in line


def test_rnn_gpu_prepare_then_train_on_it(tmp_path, capsys):
    path = write(tmp_path, make_corpus_text(6000) + "\nnaïve café 東京\n")
    assert main(["prepare", str(path), "--vocab", "bpe", "--vocab-size", "300", "-o", str(tmp_path / "p")]) == 0
    assert "(bpe)" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "p.json"), "--out", str(out), *SMALL, "--steps", "4"]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.vocab.kind == "bpe" and ckpt.vocab == load_prepared(tmp_path / "p.json").vocab


# -- training, sampling, resuming --------------------------------------------------------
def test_train_sample_and_resume_bit_exactly(tmp_path, capsys):
    path = write(tmp_path, make_corpus_text(8000) + "\nnaïve café 東京 — ½\n" * 3)
    common = [str(path), *SMALL, "--vocab", "bpe", "--vocab-size", "300", "--lr-schedule", "constant",
              "--eval-every", "10", "--log-every", "5"]
    whole, split = whole_and_resumed(main, common, tmp_path, 30)
    assert whole.step == split.step == 30 and whole.position == split.position and whole.vocab == split.vocab
    for k in whole.params:
        assert np.array_equal(whole.params[k], split.params[k]), k
    for k in whole.optimizer_state:
        assert np.array_equal(whole.optimizer_state[k], split.optimizer_state[k]), k
    records = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "val_loss" in r]
    corpus = load_corpus(path, "bpe", 0.1, vocab_size=300)
    assert evaluated and all(r["val_loss_per_char"] < r["val_loss"] for r in evaluated)  # tokens hold characters
    targets = np.concatenate([w[1:].ravel() for w in evaluation_positions(len(corpus.val), 4, 8)])
    raw = corpus.vocab.id_bytes(np.asarray(corpus.val)[targets])
    expected = sum((b & 0xC0) != 0x80 for b in raw)  # the characters that start in a target token
    assert evaluated[-1]["val_chars"] == expected
    model, vocab = rnn_gpu.load(tmp_path / "whole")
    assert vocab == whole.vocab and isinstance(rnn_gpu.sample(model, length=30, seed=1), str)
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "whole"), "--length", "20", "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.skipif(hasattr(sys.modules["rnn_gpu.sample"], "Decoder"),
                    reason="rnn_gpu/sample.py does not yet decode with Vocab.text_decoder nor encode a BPE prime "
                    "with Vocab.encode")
def test_sample_with_a_prime(tmp_path, capsys):
    path = write(tmp_path, make_corpus_text(6000) + "\nnaïve café 東京\n")
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), *SMALL, "--vocab", "bpe", "--vocab-size", "300",
                 "--steps", "5"]) == 0
    model, _ = rnn_gpu.load(out)
    text = rnn_gpu.sample(model, length=50, prime="the café 東京 ", seed=2)
    assert text.startswith("the café 東京 ")
    capsys.readouterr()
    raw = "the \udcff\udcfe"  # bytes that are not UTF-8, as a command line's argument arrives
    assert main(["sample", str(out), "--length", "5", "--seed", "1", "--prime", raw]) == 0
    assert capsys.readouterr().out.startswith("the \ufffd\ufffd")
    assert "U+D800 (a lone surrogate) at position 1" in one_error(capsys, ["sample", str(out), "--prime", "a\ud800"],
                                                                 2)


def test_the_default_corpus_in_bpe():
    corpus = load_corpus(None, "bpe", 0.1, vocab_size=400)
    assert corpus.vocab.kind == "bpe" and len(corpus.vocab) == 400
    text = corpus.vocab.decode(np.concatenate([corpus.train, corpus.val]))
    from rnn_gpu.data.corpus import default_corpus

    assert text == default_corpus()[0]
    chars = corpus.val_symbol_chars[np.arange(len(corpus.val))]
    assert int(chars.sum()) == len(corpus.vocab.decode(corpus.val))


@pytest.mark.slow
def test_mpi_ranks_equal_one_process(mpiexec, tmp_path):
    from helpers import run_job, run_single, train_args

    path = write(tmp_path, make_corpus_text(4000, seed=5) + " café\n")
    flags = ["--steps", "20", "--dtype", "float64", "--vocab", "bpe", "--vocab-size", "280"]
    one = run_single(train_args(path, tmp_path / "one", *flags))
    assert one.returncode == 0, one.stderr
    job = run_job(mpiexec, 2, train_args(path, tmp_path / "two", *flags))
    assert job.returncode == 0, job.stderr
    reference, got = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert got.vocab == reference.vocab and got.step == 20 and got.position == reference.position
    for k in reference.params:
        np.testing.assert_allclose(got.params[k], reference.params[k], rtol=0, atol=1e-12, err_msg=k)


# -- checkpoints and exports -------------------------------------------------------------
def bpe_checkpoint(vocab, rng, hidden=6) -> Checkpoint:
    params = init_params(len(vocab), hidden, int(rng.integers(2**31)))
    return Checkpoint(params=params, vocab=vocab, config={"hidden": hidden, "vocab": "bpe"})


def test_a_checkpoint_keeps_the_tokenizer(vocab, rng, tmp_path):
    save_checkpoint(tmp_path / "c.npz", bpe_checkpoint(vocab, rng))
    with np.load(tmp_path / "c.npz") as z:
        assert z["vocab_symbols"].dtype.kind == "U" and str(z["vocab_symbols"].item()) == vocab.tokenizer
        assert str(z["vocab_tokenizer"]) == bpe.TOKENIZER
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert loaded.vocab == vocab and loaded.vocab.tokenizer == vocab.tokenizer
    text = random_text(rng, 300)
    assert np.array_equal(loaded.vocab.encode(text), vocab.encode(text))


def test_exports_keep_the_tokenizer(vocab, rng, tmp_path):
    ckpt = bpe_checkpoint(vocab, rng)
    meta = mapping.metadata(ckpt, "safetensors", np.float32)
    assert meta["vocab_tokenizer"] == bpe.TOKENIZER and meta["vocab_tokenizer_json"] == vocab.tokenizer
    back, _, recorded = mapping.read_metadata(meta, "m.safetensors", "safetensors")
    assert back == vocab and recorded["vocab_size"] == len(vocab)
    record = mapping.vocab_record(vocab)
    assert tokenizers.Tokenizer.from_str(record["tokenizer_json"]).get_vocab_size() == len(record["symbols"])
    with pytest.raises(CheckpointError, match="m.onnx: its BPE tokenizer .* damaged"):
        mapping.read_metadata({**meta, "format": mapping.FORMAT_TAGS["onnx"], "vocab_tokenizer_json": "{"},
                              "m.onnx", "onnx")
    pytest.importorskip("safetensors")
    path = rnn_gpu.export(ckpt, "safetensors", tmp_path / "m.safetensors")
    model, again = rnn_gpu.load(path)
    assert again == vocab and model.vocab_size == len(vocab)


def reads_bpe_records() -> bool:
    import inspect

    from rnn_gpu.export import torch_format

    return "bpe_vocab_of_record" in inspect.getsource(torch_format)


def test_a_torch_export_keeps_the_tokenizer(vocab, rng, tmp_path):
    torch = pytest.importorskip("torch")
    path = rnn_gpu.export(bpe_checkpoint(vocab, rng), "torch", tmp_path / "m.pt")
    record = torch.load(path, weights_only=True)["vocab"]
    assert record["tokenizer"] == bpe.TOKENIZER and record["tokenizer_json"] == vocab.tokenizer
    assert tokenizers.Tokenizer.from_str(record["tokenizer_json"]).get_vocab_size() == len(record["symbols"])
    if not reads_bpe_records():
        pytest.skip("rnn_gpu/export/torch_format.py does not yet read a BPE record (mapping.bpe_vocab_of_record)")
    from rnn_gpu.export.torch_format import read_torch

    assert read_torch(path)[1] == vocab
    content = torch.load(path, weights_only=True)
    content["vocab"]["tokenizer_json"] = content["vocab"]["tokenizer_json"][:100]
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path / 'bad.pt'}: its BPE tokenizer")):
        read_torch(tmp_path / "bad.pt")


def other_tokenizer(vocab, size):
    return trained(vocab.decode(range(len(vocab))) * 3, size).tokenizer


@pytest.mark.parametrize("damage,fragment", [
    (lambda z, v: z.update(vocab_symbols=np.array(v.tokenizer[:-3])), "its BPE tokenizer (vocab_symbols) is damaged"),
    (lambda z, v: z.update(vocab_symbols=np.array(v.tokenizer.replace('"version":"1.0"', '"version":"2.0"'))),
     "cannot be read by tokenizers"),
    (lambda z, v: z.update(vocab_symbols=np.array(v.tokenizer.replace('"add_prefix_space":false',
                                                                      '"add_prefix_space":true', 1))),
     "not ByteLevel without a prefix space"),
    (lambda z, v: z.update(vocab_symbols=np.arange(3)), "not one string"),
    (lambda z, v: z.update(vocab_tokenizer=np.array("rnn_gpu.bpe/9")), "not this version's rnn_gpu.bpe/1"),
    (lambda z, v: z.pop("vocab_tokenizer"), "of tokenizer None"),
    (lambda z, v: z.update(vocab_symbols=np.array(other_tokenizer(v, 300))), "has 300 tokens but the model predicts"),
])
def test_a_damaged_tokenizer_in_a_checkpoint_is_one_error_naming_it(vocab, rng, tmp_path, capsys, damage, fragment):
    path = tmp_path / "c.npz"
    save_checkpoint(path, bpe_checkpoint(vocab, rng))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    damage(arrays, vocab)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=re.escape(fragment)) as raised:
        load_checkpoint(path)
    assert str(path) in str(raised.value)
    line = one_error(capsys, ["sample", str(path), "--length", "3"], 2)
    assert str(path) in line and fragment in line


# -- the vocabulary size, a missing library ----------------------------------------------------
@pytest.mark.parametrize("argv,fragment", [
    (["--vocab", "bpe", "--vocab-size", "256"],
     "--vocab-size must be a whole number in [257, 1048576] for --vocab bpe"),
    (["--vocab", "bpe", "--vocab-size", "1"], "--vocab-size"),
    (["--vocab", "bpe", "--vocab-size", str(2**20 + 1)], "--vocab-size"),
    (["--vocab", "bytes", "--vocab-size", "300"], "--vocab-size goes with --vocab words or --vocab bpe"),
])
def test_vocab_size_bounds(capsys, tmp_path, argv, fragment):
    corpus = write(tmp_path, make_corpus_text(2000))
    assert_usage_error(capsys, ["train", str(corpus), "--out", str(tmp_path / "r"), *argv, *SMALL], fragment)
    assert_usage_error(capsys, ["prepare", str(corpus), "-o", str(tmp_path / "p"), *argv], fragment)
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob("p.*"))


def test_vocab_size_bounds_in_python(tmp_path):
    TrainConfig(vocab="bpe", vocab_size=257).validate()
    TrainConfig(vocab="words", vocab_size=2).validate()
    check_vocab_size("bpe", 2**20)
    for kind, size in (("bpe", 256), ("bpe", 2**20 + 1), ("chars", 300), ("words", 1)):
        with pytest.raises(UsageError, match="vocab_size="):
            TrainConfig(vocab=kind, vocab_size=size).validate()
    with pytest.raises(UsageError, match=re.escape("vocab_size= must be a whole number in [257, 1048576]")):
        rnn_gpu.train(write(tmp_path, "a b c " * 100), tmp_path / "r", vocab="bpe", vocab_size=100, steps=1)


def test_a_missing_library_is_one_error_naming_the_file(vocab, rng, tmp_path, capsys, monkeypatch):
    corpus = write(tmp_path, make_corpus_text(3000))
    meta_path = prepare(corpus, "bpe", tmp_path / "p", vocab_size=300)
    save_checkpoint(tmp_path / "c.npz", bpe_checkpoint(vocab, rng))
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` fails as if not installed
    install = "needs the tokenizers package: pip install 'rnn_gpu[bpe]'"
    assert_usage_error(capsys, ["prepare", str(corpus), "--vocab", "bpe", "-o", str(tmp_path / "q")], install)
    assert_usage_error(capsys, ["train", str(corpus), "--vocab", "bpe", "--out", str(tmp_path / "r"), *SMALL],
                       install)
    assert_usage_error(capsys, ["train", str(meta_path), "--out", str(tmp_path / "r"), *SMALL], str(meta_path),
                       install)
    assert_usage_error(capsys, ["sample", str(tmp_path / "c.npz")], str(tmp_path / "c.npz"), install)
    assert not list(tmp_path.glob("q.*"))
