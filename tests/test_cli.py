"""The command line, bad input included: one `error:` line, exit code 2,
no traceback, no file changed; its help, version and bare command. (Bad
paths: test_cli_paths.py; what the machine refuses: test_machine_failures.py.)"""
import subprocess
import sys

import numpy as np
import pytest
from helpers import SMALL, assert_usage_error, one_error

from rnn_gpu.backends import cupy_unavailable_reason
from rnn_gpu.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnn_gpu.cli import main
from rnn_gpu.data import Vocab

TINY = ["--hidden", "16", "--batch", "4", "--seq", "8", "--quiet"]


@pytest.fixture
def trained_run(tmp_path, corpus_file):
    out = tmp_path / "run"
    assert main(["train", str(corpus_file), "--out", str(out), "--steps", "20", *TINY]) == 0
    return out


def test_train_then_sample(trained_run, capsys):
    capsys.readouterr()
    assert main(["sample", str(trained_run), "--length", "50", "--prime", "the ", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the ") and len(text) == 4 + 50 + 1
    checkpoint = str(trained_run / "checkpoint.npz")
    assert main(["sample", checkpoint, "--length", "50", "--prime", "the ", "--seed", "3"]) == 0
    assert capsys.readouterr().out == text


def test_python_dash_m_works(trained_run):
    result = subprocess.run([sys.executable, "-m", "rnn_gpu", "sample", str(trained_run), "--length", "5",
                             "--temperature", "0"], capture_output=True, text=True)
    assert result.returncode == 0 and len(result.stdout) == 6


def test_checkpoint_round_trip(tmp_path, rng):
    vocab = Vocab.from_text("xyzé")
    params = {"U": rng.normal(size=(3, 4)), "W": rng.normal(size=(3, 3)), "V": rng.normal(size=(4, 3)),
              "b": rng.normal(size=3), "c": rng.normal(size=4)}
    save_checkpoint(tmp_path / "c.npz", Checkpoint(params, vocab, {"hidden": 3}, step=7, position=12,
                                                   h=rng.normal(size=(2, 3)), optimizer_state={"mem.W": params["W"]}))
    back = load_checkpoint(tmp_path / "c.npz")
    assert back.vocab == vocab and back.config == {"hidden": 3} and (back.step, back.position) == (7, 12)
    for k in params:
        np.testing.assert_array_equal(back.params[k], params[k])
    np.testing.assert_array_equal(back.optimizer_state["mem.W"], params["W"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_missing_corpus(capsys, tmp_path):
    assert_usage_error(capsys, ["train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")], "not found")
    assert not (tmp_path / "o").exists()


def test_corpus_directory_without_files(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_usage_error(capsys, ["train", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], "no files")


def test_empty_and_short_corpus(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_usage_error(capsys, ["train", str(empty), "--out", str(tmp_path / "o")], "empty")
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 3)
    assert_usage_error(capsys, ["train", str(short), "--out", str(tmp_path / "o"), "--seq", "64"], "too short")
    assert not (tmp_path / "o").exists()


def test_invalid_utf8(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc" * 100 + b"\xc3\x28")
    assert_usage_error(capsys, ["train", str(bad), "--out", str(tmp_path / "o")], "byte offset 300", "--vocab bytes")


@pytest.mark.parametrize("flag,value", [("--hidden", "0"), ("--hidden", "-3"), ("--batch", "10000000"),
                                        ("--seq", "x"), ("--lr", "-1"), ("--lr", "nan"), ("--steps", "0"),
                                        ("--val-fraction", "1.5"), ("--clip", "0"), ("--time", "-2")])
def test_bad_sizes(capsys, corpus_file, tmp_path, flag, value):
    assert_usage_error(capsys, ["train", str(corpus_file), "--out", str(tmp_path / "o"), flag, value], flag)


def test_absurd_memory(capsys, corpus_file, tmp_path):
    assert_usage_error(capsys, ["train", str(corpus_file), "--out", str(tmp_path / "o"),
                                "--hidden", "16384", "--batch", "65536", "--seq", "1000"], "GiB")


@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="a GPU is usable here")
def test_cupy_without_gpu(capsys, corpus_file, tmp_path):
    assert_usage_error(capsys, ["train", str(corpus_file), "--out", str(tmp_path / "o"), "--backend", "cupy"],
                       "cupy")
    assert not (tmp_path / "o").exists()


def test_existing_checkpoint_is_not_overwritten(capsys, trained_run, corpus_file):
    before = (trained_run / "checkpoint.npz").read_bytes()
    assert_usage_error(capsys, ["train", str(corpus_file), "--out", str(trained_run), *TINY], "--force")
    assert (trained_run / "checkpoint.npz").read_bytes() == before


def test_missing_truncated_and_foreign_checkpoints(capsys, trained_run, tmp_path):
    assert_usage_error(capsys, ["sample", str(tmp_path / "none.npz")], "not found")
    data = (trained_run / "checkpoint.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    assert_usage_error(capsys, ["sample", str(truncated)], "truncated.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    assert_usage_error(capsys, ["sample", str(foreign)], "not an rnn_gpu checkpoint")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_usage_error(capsys, ["sample", str(text)], "notes.txt")
    assert truncated.read_bytes() == data[: len(data) // 2]


def test_prime_outside_vocabulary(capsys, trained_run):
    assert_usage_error(capsys, ["sample", str(trained_run), "--prime", "the Ω"], "'Ω'")


def test_unknown_option_is_one_line(capsys):
    assert_usage_error(capsys, ["train", "--out", "x", "--bogus"], "--bogus")
    assert_usage_error(capsys, ["frobnicate"], "frobnicate")


def test_a_closed_pipe_ends_sampling_quietly(trained_run):
    sample = subprocess.Popen([sys.executable, "-m", "rnn_gpu", "sample", str(trained_run), "--length", "200000",
                               "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sample.stdout.read(10)
    sample.stdout.close()  # like `| head -c 10`
    _, err = sample.communicate(timeout=120)
    assert sample.returncode == 141 and b"Traceback" not in err and err == b"", err


def test_negative_seed_is_rejected_before_anything_is_made(capsys, corpus_file, tmp_path):
    out = tmp_path / "run"
    line = one_error(capsys, ["train", str(corpus_file), "--out", str(out), "--seed", "-1", *SMALL], 2)
    assert "--seed" in line and not out.exists()
    one_error(capsys, ["sample", str(tmp_path), "--seed", "-1"], 2)


def test_help_version_and_bare_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--hidden", "--layers", "--dropout", "--lr-schedule", "--val-chars", "--distributed", "--seed"):
        assert flag in text
    assert "(default 256)" in text
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("rnn-gpu ")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and all(c in err for c in ("train", "sample", "prepare", "plot", "bench"))


def test_every_train_flag_has_help_with_its_default():
    from rnn_gpu.cli import build_parser

    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
            if action.default not in (None, False, [], "==SUPPRESS=="):
                assert "default" in action.help, action.option_strings

