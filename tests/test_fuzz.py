"""Loaders of corpora, prepared corpora and checkpoints on damaged input:
each gives one `error:` line and exit code 2, never a traceback, and never
changes the file it was given."""
import io
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_gpu.cli import main

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run_cli(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def assert_clean_failure_or_success(code, err):
    assert "Traceback" not in err
    if code != 0:
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_corpus_bytes(tmp_path_factory, capsys, data):
    d = tmp_path_factory.mktemp("corpus")
    path = d / "c.txt"
    path.write_bytes(data)
    for vocab in ("chars", "bytes"):
        code, err = run_cli(capsys, ["train", str(path), "--out", str(d / vocab), "--steps", "2", "--hidden", "4",
                                     "--batch", "2", "--seq", "4", "--quiet", "--vocab", vocab])
        assert_clean_failure_or_success(code, err)
    assert path.read_bytes() == data


@FUZZ
@given(meta=st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4)).map(
        lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"format": st.just("rnn_gpu.corpus/1"), "vocab_kind": st.sampled_from(["chars", "x"]),
                           "symbols": st.lists(st.integers(-5, 300), max_size=5),
                           "dtype": st.sampled_from(["uint8", "uint16", "float32", "nonsense"]),
                           "length": st.integers(-3, 50), "data": st.sampled_from(["p.bin", "../p.bin", ""])}).map(
        lambda v: json.dumps(v).encode())))
def test_damaged_prepared_corpus(tmp_path_factory, capsys, meta):
    d = tmp_path_factory.mktemp("prepared")
    (d / "p.json").write_bytes(meta)
    (d / "p.bin").write_bytes(bytes(range(40)))
    code, err = run_cli(capsys, ["train", str(d / "p.json"), "--out", str(d / "run"), "--steps", "1",
                                 "--hidden", "4", "--batch", "1", "--seq", "2", "--quiet"])
    assert_clean_failure_or_success(code, err)
    assert (d / "p.json").read_bytes() == meta


def npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


VALID_ARRAYS = {
    "format": np.array("rnn_gpu.checkpoint/1"), "U": np.zeros((3, 4)), "W": np.zeros((3, 3)),
    "V": np.zeros((4, 3)), "b": np.zeros(3), "c": np.zeros(4), "vocab_kind": np.array("chars"),
    "vocab_symbols": np.arange(97, 101), "config": np.array("{}"),
}
REPLACEMENTS = st.sampled_from([np.zeros((2, 2)), np.array("text"), np.array(3), np.zeros(0), np.array([np.nan]),
                                np.array(["a", "b"]), np.zeros((3, 3, 3)), np.array("{not json"),
                                np.array("[1, 2]"), np.array(-1)])


@FUZZ
@given(key=st.sampled_from(sorted(VALID_ARRAYS) + ["step", "position", "h", "best_val_loss", "opt.mem.W"]),
       value=REPLACEMENTS, cut=st.integers(0, 2000), truncate=st.booleans())
def test_damaged_checkpoint(tmp_path_factory, capsys, key, value, cut, truncate):
    d = tmp_path_factory.mktemp("ckpt")
    data = npz_bytes({**VALID_ARRAYS, key: value})
    if truncate:
        data = data[: cut % max(1, len(data))]
    (d / "checkpoint.npz").write_bytes(data)
    for argv in (["sample", str(d), "--length", "3"],
                 ["train", "--out", str(d), "--resume", "--steps", "5", "--quiet"]):
        code, err = run_cli(capsys, argv)
        assert_clean_failure_or_success(code, err)
    assert (d / "checkpoint.npz").read_bytes() == data


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_checkpoint(tmp_path_factory, capsys, data):
    d = tmp_path_factory.mktemp("rand")
    (d / "checkpoint.npz").write_bytes(data)
    code, err = run_cli(capsys, ["sample", str(d)])
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
