"""Loaders of corpora, prepared corpora and checkpoints on damaged input:
each gives one `error:` line and exit code 2, never a traceback, and never
changes the file it was given."""
import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_gpu.cli import main

# RNN_GPU_FUZZ_EXAMPLES=N fuzzes deeper than CI's 40 examples per test.
FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("RNN_GPU_FUZZ_EXAMPLES", 40)), deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


def fuzz(test):
    """Hypothesis with the settings above, marked `slow`: these run as long as RNN_GPU_FUZZ_EXAMPLES asks."""
    return pytest.mark.slow(FUZZ_SETTINGS(test))


def run_cli(capsys, argv):
    """main() in this process: an exception escaping it is what a user would
    see as a traceback, so it fails the test here."""
    try:
        code = main(argv)
    except BaseException as exc:  # noqa: BLE001 (any escape is the failure we look for)
        pytest.fail(f"rnn-gpu {' '.join(argv)} raised {type(exc).__name__}: {exc}")
    captured = capsys.readouterr()
    return code, captured.err


def assert_clean_failure_or_success(code, err, allowed=(2,)):
    if code != 0:
        assert code in allowed, err
        lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and err.strip().splitlines()[-1].startswith("error: "), err


@fuzz
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


@fuzz
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


@fuzz
@given(key=st.sampled_from(sorted(VALID_ARRAYS) + ["step", "position", "h", "best_val_loss", "opt.mem.W"]),
       value=REPLACEMENTS, cut=st.integers(0, 2000), truncate=st.booleans())
def test_damaged_checkpoint(tmp_path_factory, capsys, key, value, cut, truncate):
    d = tmp_path_factory.mktemp("ckpt")
    data = npz_bytes({**VALID_ARRAYS, key: value})
    if truncate:
        data = data[: cut % max(1, len(data))]
    (d / "checkpoint.npz").write_bytes(data)
    for argv in (["sample", str(d), "--length", "3", "--seed", "0"],
                 ["train", "--out", str(d), "--resume", "--steps", "5", "--quiet"]):
        code, err = run_cli(capsys, argv)
        assert_clean_failure_or_success(code, err)
    assert (d / "checkpoint.npz").read_bytes() == data


@pytest.mark.parametrize("symbols", [[98, 97], [97, 97], [-1, 97], [97, 0x110000], []])
def test_checkpoint_vocabulary_must_be_sorted_distinct_code_points(tmp_path, capsys, symbols):
    (tmp_path / "checkpoint.npz").write_bytes(npz_bytes({**VALID_ARRAYS, "vocab_symbols": np.array(symbols)}))
    code, err = run_cli(capsys, ["sample", str(tmp_path), "--length", "3", "--seed", "0"])
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def prepared_files(d, symbols, ids):
    meta = {"format": "rnn_gpu.corpus/1", "vocab_kind": "chars", "symbols": symbols, "dtype": "uint8",
            "length": len(ids), "data": "p.bin"}
    (d / "p.json").write_text(json.dumps(meta))
    (d / "p.bin").write_bytes(bytes(ids))
    return d / "p.json"


@pytest.mark.parametrize("symbols,ids,message", [([97, 98], [0, 1, 2, 1] * 20, "symbol id 2, beyond its vocabulary"),
                                                  ([98, 97], [0, 1] * 40, "not a prepared rnn_gpu corpus"),
                                                  ([97, 97], [0, 1] * 40, "not a prepared rnn_gpu corpus")])
def test_prepared_corpus_ids_and_symbols_are_checked(tmp_path, capsys, symbols, ids, message):
    meta = prepared_files(tmp_path, symbols, ids)
    code, err = run_cli(capsys, ["train", str(meta), "--out", str(tmp_path / "run"), "--steps", "1", "--hidden", "4",
                                 "--batch", "1", "--seq", "2", "--quiet"])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@fuzz
@given(data=st.binary(max_size=300))
def test_random_bytes_as_checkpoint(tmp_path_factory, capsys, data):
    d = tmp_path_factory.mktemp("rand")
    (d / "checkpoint.npz").write_bytes(data)
    code, err = run_cli(capsys, ["sample", str(d), "--seed", "1"])
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


NUMBERS = st.one_of(st.text(max_size=6), st.sampled_from(
    ["0", "-1", "1", "2", "-0", "nan", "inf", "-inf", "1e309", "1e-300", "0.5", "99999999999999999999", "0x10", ""]))
TRAIN_FLAGS = {
    "--hidden": NUMBERS, "--layers": NUMBERS, "--batch": NUMBERS, "--seq": NUMBERS, "--lr": NUMBERS,
    "--dropout": NUMBERS, "--warmup": NUMBERS, "--min-lr": NUMBERS, "--clip": NUMBERS, "--clip-norm": NUMBERS,
    "--val-fraction": NUMBERS, "--val-chars": NUMBERS, "--eval-every": NUMBERS, "--log-every": NUMBERS,
    "--seed": NUMBERS, "--time": st.sampled_from(["0", "-1", "nan", "abc", "1e-9", "inf"]),
    "--steps": st.sampled_from(["0", "-1", "1", "abc", "1.5", "1e3"]),
    "--lr-schedule": st.sampled_from(["cosine", "constant", "linear", ""]),
    "--optimizer": st.sampled_from(["adam", "adagrad", "sgd"]), "--vocab": st.sampled_from(["chars", "bytes", "x"]),
    "--backend": st.sampled_from(["numpy", "opencl", "cuda", ""]), "--dtype": st.sampled_from(["float32", "int8"]),
    "--distributed": st.sampled_from(["none", "auto", "tcp"]),
}
SWITCHES = ["--resume", "--force", "--skip-nonfinite", "--quiet", "--bogus", "--hid"]


@fuzz
@given(flags=st.dictionaries(st.sampled_from(sorted(TRAIN_FLAGS)), st.none(), max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: TRAIN_FLAGS[k] for k in keys})),
    switches=st.lists(st.sampled_from(SWITCHES), max_size=2, unique=True))
def test_any_train_arguments(tmp_path_factory, capsys, corpus_file_small, flags, switches):
    """Random train flags and values on a tiny corpus: success, or one `error:` line (2: bad input)."""
    d = tmp_path_factory.mktemp("args")
    argv = ["train", str(corpus_file_small), "--out", str(d / "run")]
    defaults = {"--steps": "2", "--hidden": "4", "--batch": "2", "--seq": "4"}
    for flag, value in {**defaults, **flags}.items():
        argv += [flag, value]
    if "--time" in flags and "--steps" not in flags:
        argv += ["--steps", "2"]
    code, err = run_cli(capsys, argv + switches + ["--quiet"])
    assert_clean_failure_or_success(code, err, allowed=(1, 2))  # 1: e.g. a divergence the flags invited


@pytest.fixture(scope="module")
def corpus_file_small(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "corpus.txt"
    path.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    return path


@fuzz
@given(command=st.sampled_from(["sample", "prepare", "plot", "bench", "export", "inspect"]),
       args=st.lists(st.one_of(st.sampled_from(["--length", "--temperature", "--top-k", "--top-p", "--num-samples",
                                                 "--seed", "--prime", "-o", "--vocab", "--seconds", "--hidden",
                                                 "--backend", "--json", "--format", "onnx", "torch", "--seq",
                                                 "--corpus"]), NUMBERS), max_size=6))
def test_any_other_command_arguments(tmp_path_factory, capsys, command, args):
    d = tmp_path_factory.mktemp("other")
    target = {"sample": str(d), "prepare": str(d / "none.txt"), "plot": str(d), "bench": "--seconds",
              "export": str(d), "inspect": str(d)}[command]
    argv = [command, target, *(["0.05", "--hidden", "4", "--batch", "2", "--seq", "2"] if command == "bench" else []),
            *args]
    code, err = run_cli(capsys, argv)
    assert_clean_failure_or_success(code, err, allowed=(1, 2))


@pytest.mark.parametrize("argv", [
    ["train", "--out", "OUT", "--seed", "-1"],
    ["train", "nosuch.txt", "--out", "OUT"],
    ["sample", "OUT"],
    ["prepare", "nosuch.txt"],
    ["plot", "OUT", "-o", "/nonexistent/dir/x.png"],
    ["export", "OUT", "--format", "onnx", "-o", "OUT/m.onnx"],
    ["inspect", "OUT", "--seq", "0"],
    [],
])
def test_a_real_process_prints_no_traceback(tmp_path, argv):
    import subprocess
    import sys

    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip(), "no message at all"
    assert not (tmp_path / "out").exists()
