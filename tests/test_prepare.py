"""Streaming preparation of large corpora and training from the prepared form."""
import json
import os

import numpy as np
import pytest

from rnn_gpu.cli import main
from rnn_gpu.data import CorpusError, Vocab, sources
from rnn_gpu.data import prepared as prep
from rnn_gpu.data.corpus import cache_prefix, load_corpus


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 7)  # split multi-byte characters at every turn


def random_text(rng, n):
    alphabet = list("abc xyz\n") + ["é", "€", "🙂", "中"]
    return "".join(rng.choice(alphabet, size=n))


def test_chunked_encoding_matches_whole_text(tmp_path, rng, small_chunks):
    text = random_text(rng, 3000)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    meta = prep.prepare(str(tmp_path / "c.txt"), "chars", tmp_path / "out")
    prepared = prep.load_prepared(meta)
    vocab = Vocab.from_text(text)
    assert prepared.vocab == vocab
    assert isinstance(prepared.ids, np.memmap)
    np.testing.assert_array_equal(prepared.ids, vocab.encode(text))


def test_bytes_vocabulary_and_directory_sources(tmp_path, rng, small_chunks):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    blobs = [rng.integers(0, 256, 100).astype(np.uint8).tobytes() for _ in range(3)]
    for name, blob in zip(["a.bin", "b.bin", "sub/c.bin"], blobs, strict=True):
        (tmp_path / "d" / name).write_bytes(blob)
    prepared = prep.load_prepared(prep.prepare(str(tmp_path / "d"), "bytes", tmp_path / "out"))
    assert prepared.ids.tobytes() == b"".join(blobs)  # sorted file order
    glob_prepared = prep.load_prepared(prep.prepare(str(tmp_path / "d" / "*.bin"), "bytes", tmp_path / "g"))
    assert glob_prepared.ids.tobytes() == b"".join(blobs[:2])


def test_invalid_utf8_offset_across_chunks(tmp_path, small_chunks):
    (tmp_path / "bad.txt").write_bytes("ééééé".encode() + b"ab\xffcd")
    with pytest.raises(CorpusError, match="byte offset 12"):
        prep.prepare(str(tmp_path / "bad.txt"), "chars", tmp_path / "out")
    (tmp_path / "cut.txt").write_bytes("abc€".encode()[:-1])
    with pytest.raises(CorpusError, match="ends inside a character"):
        prep.prepare(str(tmp_path / "cut.txt"), "chars", tmp_path / "out")


def test_training_reuses_the_prepared_form_until_the_source_changes(corpus_file, tmp_path):
    first = load_corpus(corpus_file, None)
    assert isinstance(first.train, np.memmap)
    prefix = cache_prefix([corpus_file], "chars")
    data = prefix.with_name(prefix.name + ".bin")
    stamp = data.stat().st_mtime_ns
    load_corpus(corpus_file, None)
    assert data.stat().st_mtime_ns == stamp  # reused
    corpus_file.write_text(corpus_file.read_text() + "zebra\n")
    changed = load_corpus(corpus_file, None)
    assert "z" in changed.vocab.decode(range(len(changed.vocab)))
    assert data.stat().st_mtime_ns != stamp


def test_prepare_command_then_train(corpus_file, tmp_path, capsys):
    assert main(["prepare", str(corpus_file), "-o", str(tmp_path / "p")]) == 0
    assert "symbols" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "p.json"), "--out", str(tmp_path / "run"), "--steps", "5",
                 "--hidden", "8", "--batch", "2", "--seq", "8", "--quiet"]) == 0
    assert main(["train", str(tmp_path / "p.json"), "--vocab", "bytes", "--out", str(tmp_path / "r2"),
                 "--quiet"]) == 2
    assert "prepared with --vocab chars" in capsys.readouterr().err


def test_prepare_output_names(corpus_file, tmp_path, capsys):
    """-o PREFIX.json names the same files as -o PREFIX; -o DIR writes inside it."""
    assert main(["prepare", str(corpus_file), "-o", str(tmp_path / "p.json")]) == 0
    assert sorted(p.name for p in tmp_path.glob("p.*")) == ["p.bin", "p.json"]
    (tmp_path / "d").mkdir()
    assert main(["prepare", str(corpus_file), "-o", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [f"{corpus_file.name}.chars.bin",
                                                                  f"{corpus_file.name}.chars.json"]
    assert main(["prepare", str(corpus_file), str(corpus_file), "-o", str(tmp_path / "d")]) == 2
    assert "pass -o PREFIX" in capsys.readouterr().err


def test_prepared_corpus_with_damaged_data_file(corpus_file, tmp_path, capsys):
    meta = prep.prepare(str(corpus_file), "chars", tmp_path / "p")
    (tmp_path / "p.bin").write_bytes(b"12")
    assert main(["train", str(meta), "--out", str(tmp_path / "run")]) == 2
    assert "wrong size" in capsys.readouterr().err


def test_prepare_records_the_largest_id_and_a_start_reads_only_the_metadata(tmp_path, rng, small_chunks,
                                                                          monkeypatch):
    text = random_text(rng, 2000)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    meta = prep.prepare(str(tmp_path / "c.txt"), "chars", tmp_path / "out")
    recorded = json.loads(meta.read_text())["max_id"]
    assert recorded == int(Vocab.from_text(text).encode(text).max())  # a plain pass over the encoded text
    monkeypatch.setattr(prep, "largest_id", lambda *a: pytest.fail("the data was read at a start"))
    assert prep.load_prepared(meta).meta["max_id"] == recorded


def test_an_older_corpus_is_checked_once_and_its_maximum_recorded(tmp_path, rng):
    text = random_text(rng, 500)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    meta = prep.prepare(str(tmp_path / "c.txt"), "chars", tmp_path / "out")
    older = json.loads(meta.read_text())
    expected = older.pop("max_id")
    meta.write_text(json.dumps(older))  # as prepared before max_id was recorded
    assert prep.load_prepared(meta).meta["max_id"] == expected
    assert json.loads(meta.read_text())["max_id"] == expected  # written back for the next start
    assert not list(tmp_path.glob(".*.tmp"))
    meta.write_text(json.dumps(older))
    meta.chmod(0o444)
    tmp_path.chmod(0o555)  # read-only: checked at each start, nothing written
    try:
        assert prep.load_prepared(meta).meta["max_id"] == expected
    finally:
        tmp_path.chmod(0o755)
    if os.geteuid() != 0:  # root writes anyway
        assert "max_id" not in json.loads(meta.read_text())


def test_an_older_corpus_with_ids_beyond_its_vocabulary_is_refused(tmp_path):
    (tmp_path / "c.txt").write_text("abcabc", encoding="utf-8")
    meta = prep.prepare(str(tmp_path / "c.txt"), "chars", tmp_path / "out")
    older = json.loads(meta.read_text())
    del older["max_id"]
    meta.write_text(json.dumps(older))
    (tmp_path / "out.bin").write_bytes(bytes([0, 1, 2, 7, 1, 0]))
    with pytest.raises(CorpusError, match="symbol id 7, beyond its vocabulary of 3"):
        prep.load_prepared(meta)


def damage(meta_path, offset: int, value: int) -> None:
    """One id of a prepared corpus's data file overwritten, its metadata untouched."""
    data = meta_path.with_name(json.loads(meta_path.read_text())["data"])
    raw = bytearray(data.read_bytes())
    raw[offset] = value
    data.write_bytes(bytes(raw))


@pytest.mark.parametrize("where", ["train", "val"])
def test_an_id_beyond_the_vocabulary_is_one_error_naming_its_offset(corpus_file, tmp_path, capsys, where):
    meta = prep.prepare(str(corpus_file), "chars", tmp_path / "p")
    length = json.loads(meta.read_text())["length"]
    offset = 100 if where == "train" else length - 50  # inside the first window / the held-out tenth
    damage(meta, offset, 250)
    args = ["train", str(meta), "--out", str(tmp_path / "run"), "--steps", "3", "--hidden", "8", "--batch", "2",
            "--seq", "64", "--quiet", "--eval-every", "1", "--backend", "numpy"]
    assert main(args) == 2
    err = capsys.readouterr().err
    part_offset = offset if where == "train" else offset - (length - int(length * 0.1))
    part = "training" if where == "train" else "validation"
    assert err.strip().splitlines() == [
        f"error: the corpus holds symbol id 250 at offset {part_offset:,} of its {part} part, beyond its "
        f"vocabulary of {len(prep.load_prepared(meta).vocab)} symbols (a damaged or mismatched data file)"]


def test_ids_on_a_device_are_checked_once_when_the_stream_is_made(rng):
    """Device-resident ids (a stand-in namespace for the array module): the
    whole array is checked at the start, not each window (no host round trip per step)."""
    from types import SimpleNamespace

    from rnn_gpu.data import BatchStream

    device_xp = SimpleNamespace(arange=np.arange)
    data = rng.integers(0, 10, 400).astype(np.uint8)
    data[333] = 12
    with pytest.raises(CorpusError, match="symbol id 12 at offset 333 of its training part"):
        BatchStream(data, 4, 8, xp=device_xp, vocab_size=10)
    data[333] = 9
    stream = BatchStream(data, 4, 8, xp=device_xp, vocab_size=10)
    data[0] = 12  # after the check: a device stream reads windows unchecked
    assert stream.next()[0][0, 0] == 12
    with pytest.raises(CorpusError, match="symbol id 12 at offset 0 "):
        BatchStream(data, 4, 8, vocab_size=10).next()  # a host stream checks each window
