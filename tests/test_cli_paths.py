"""The paths a command is given: empty, too long, through a file, not a
regular file, missing, a foreign file, a directory of corpora (which files it
takes, the one that is not text), several corpora, a plot's file name. Bad
input is one `error:` line with exit 2 and leaves nothing made."""
import json
import os
from pathlib import Path

import pytest
from helpers import SMALL, make_corpus_text, one_error

from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main


@pytest.mark.parametrize("argv", [["train", "", "--out", "OUT"], ["train", "CORPUS", "--out", ""],
                                  ["sample", ""], ["plot", ""], ["prepare", ""], ["prepare", "CORPUS", "-o", ""]])
def test_an_empty_path_is_not_the_current_directory(capsys, corpus_file, tmp_path, monkeypatch, argv):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = [{"OUT": str(tmp_path / "o"), "CORPUS": str(corpus_file)}.get(a, a) for a in argv]
    assert "must not be empty" in one_error(capsys, argv, 2)
    assert list(cwd.iterdir()) == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["train", "bench"])
def test_a_directory_through_a_file_is_bad_input(capsys, corpus_file, tmp_path, command):
    out = str(corpus_file / "run")
    argv = {"train": ["train", str(corpus_file), "--out", out, *SMALL],
            "bench": ["bench", "--compare", "--seconds", "0.1", "--out", out]}[command]
    line = one_error(capsys, argv, 2)
    assert f"{corpus_file} is a file" in line


def test_long_names(capsys, corpus_file, trained_small_run, tmp_path):
    """A name of 250 characters is a file name like any (the temporary one
    beside it must fit too); one longer than the file system allows is bad input."""
    pytest.importorskip("matplotlib")
    image = tmp_path / ("p" * 250 + ".png")
    assert main(["plot", str(trained_small_run), "-o", str(image)]) == 0 and image.is_file()
    capsys.readouterr()
    before = sorted(tmp_path.rglob("*"))
    too_long = "x" * 300
    for argv in (["train", str(corpus_file), "--out", str(tmp_path / too_long), *SMALL],
                 ["train", str(tmp_path / too_long), "--out", str(tmp_path / "o"), *SMALL],
                 ["sample", str(tmp_path / too_long)],
                 ["prepare", str(corpus_file), "-o", str(tmp_path / ("q" * 252))]):  # q...q.json: 257 characters
        assert "too long" in one_error(capsys, argv, 2)
    assert sorted(tmp_path.rglob("*")) == before  # nothing made, nothing left half-written


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_a_corpus_that_is_not_a_regular_file(capsys, tmp_path, command):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for corpus in (str(fifo), "/dev/zero"):
        output = ["--out", str(tmp_path / "o")] if command == "train" else ["-o", str(tmp_path / "p")]
        argv = [command, corpus, *output]
        assert "not a regular file" in one_error(capsys, argv, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_a_foreign_file_named_checkpoint(capsys, tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(os.urandom(300))
    line = one_error(capsys, ["sample", str(tmp_path), "--seed", "1"], 2)
    assert "not an rnn_gpu checkpoint" in line and "pickle" not in line


def test_prepare_of_a_missing_file(capsys, tmp_path):
    line = one_error(capsys, ["prepare", str(tmp_path / "nosuch.txt")], 2)
    assert "not found" in line and "glob" not in line


def test_several_corpus_paths_and_directory_selection(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / ".git").mkdir()
    (data / "a.txt").write_text(make_corpus_text(3_000, seed=1))
    (data / "sub" / "b.txt").write_text(make_corpus_text(3_000, seed=2))
    (data / "notes.md").write_text("ZZZZ" * 100)
    (data / ".git" / "config").write_text("QQQQ" * 100)
    (data / ".hidden.txt").write_text("XXXX" * 100)
    meta = tmp_path / "p"
    assert main(["prepare", str(data), "-o", str(meta), "--exclude", "*.md"]) == 0
    capsys.readouterr()
    prepared = json.loads((tmp_path / "p.json").read_text())
    assert [Path(s["path"]).name for s in prepared["sources"]] == ["a.txt", "b.txt"]
    assert not {ord(c) for c in "ZQX"} & set(prepared["symbols"])
    out = tmp_path / "run"
    assert main(["train", str(data / "a.txt"), str(data / "sub" / "b.txt"), "--out", str(out), *SMALL,
                 "--steps", "2"]) == 0
    assert [Path(p).name for p in load_checkpoint(out).config["corpus"]] == ["a.txt", "b.txt"]
    assert main(["prepare", str(data), "-o", str(tmp_path / "q"), "--include", "b*"]) == 0
    assert [Path(s["path"]).name for s in json.loads((tmp_path / "q.json").read_text())["sources"]] == ["b.txt"]


def test_a_directory_names_the_file_that_is_not_text(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("hello " * 100)
    (data / "bad.txt").write_bytes(b"ok \xff\xfe not utf-8")
    line = one_error(capsys, ["prepare", str(data), "-o", str(tmp_path / "p")], 2)
    assert "bad.txt" in line and "byte offset 3" in line


def test_plot_into_a_missing_directory(capsys, trained_small_run):
    line = one_error(capsys, ["plot", str(trained_small_run), "-o", "/nonexistent/dir/x.png"], 2)
    assert "/nonexistent/dir" in line


def test_plot_format_follows_the_file_name(capsys, trained_small_run, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(trained_small_run), "-o", str(tmp_path / "loss.pdf")]) == 0
    assert (tmp_path / "loss.pdf").read_bytes()[:5] == b"%PDF-"
    assert main(["plot", str(trained_small_run), "-o", str(tmp_path / "loss")]) == 0  # no extension: PNG
    assert (tmp_path / "loss").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert "cannot write .xyz" in one_error(capsys, ["plot", str(trained_small_run), "-o", str(tmp_path / "a.xyz")], 2)
    assert "is a directory" in one_error(capsys, ["plot", str(trained_small_run), "-o", str(tmp_path)], 2)
    assert not (tmp_path / "a.xyz").exists()

