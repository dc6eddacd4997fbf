"""The environment a real user runs in: read-only directories (as another
user, since root ignores permission bits), no $HOME, a full disk, no
memory, foreign files. Each failure is one `error:` line with exit 2 (bad
input) or 1 (the machine), and leaves nothing half-made."""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main

SMALL = ["--hidden", "8", "--batch", "2", "--seq", "4", "--quiet", "--backend", "numpy"]


def one_error(capsys, argv, code):
    got = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_negative_seed_is_rejected_before_anything_is_made(capsys, corpus_file, tmp_path):
    out = tmp_path / "run"
    line = one_error(capsys, ["train", str(corpus_file), "--out", str(out), "--seed", "-1", *SMALL], 2)
    assert "--seed" in line and not out.exists()
    one_error(capsys, ["sample", str(tmp_path), "--seed", "-1"], 2)


@pytest.fixture
def read_only(tmp_path):
    """make(name, fill=None) -> a directory this process cannot write: for
    root (whom permission bits do not stop) a read-only bind mount, else mode
    0555. Unmounted at the end."""
    mounts = []

    def make(name, fill=None):
        source = tmp_path / f"{name}.source"
        source.mkdir()
        if fill:
            fill(source)
        if os.geteuid() != 0:
            source.chmod(0o555)
            return source
        target = tmp_path / name
        target.mkdir()
        for command in (["mount", "--bind", str(source), str(target)],
                        ["mount", "-o", "remount,ro,bind", str(target)]):
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                if command[1] == "-o":
                    subprocess.run(["umount", str(target)])
                pytest.skip(f"root without a read-only bind mount ({proc.stderr.strip()})")
        mounts.append(target)
        return target

    yield make
    for target in reversed(mounts):
        subprocess.run(["umount", "-l", str(target)])


def test_out_inside_a_read_only_directory(read_only, corpus_file, capsys):
    ro = read_only("ro")
    line = one_error(capsys, ["train", str(corpus_file), "--out", str(ro / "run"), *SMALL, "--steps", "2"], 1)
    assert str(ro / "run") in line and not (ro / "run").exists()


def test_out_itself_read_only(read_only, corpus_file, capsys):
    out = read_only("run")
    line = one_error(capsys, ["train", str(corpus_file), "--out", str(out), *SMALL, "--steps", "2"], 1)
    assert str(out) in line and list(out.iterdir()) == []


def test_no_writable_home_falls_back_and_says_where(read_only, corpus_file, tmp_path, monkeypatch):
    """$HOME unwritable, no $RNN_GPU_CACHE or $XDG_CACHE_HOME: the cache goes beside --out."""
    monkeypatch.setenv("HOME", str(read_only("home")))
    monkeypatch.delenv("RNN_GPU_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    args = [sys.executable, "-m", "rnn_gpu", "train", str(corpus_file), "--out", str(work / "run"), "--hidden", "8",
            "--batch", "2", "--seq", "4", "--steps", "2", "--backend", "numpy"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "made the cache" in proc.stderr and str(work / ".rnn_gpu-cache") in proc.stderr, proc.stderr
    again = subprocess.run([*args, "--force"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "reused the cache" in again.stderr, again.stderr


def test_a_cache_path_that_is_a_file_falls_back_to_memory(corpus_file, monkeypatch):
    from rnn_gpu.data.corpus import prepared_for

    monkeypatch.setenv("RNN_GPU_CACHE", str(corpus_file))  # a file where the cache directory should be
    prepared = prepared_for(str(corpus_file), "chars")
    assert prepared.origin.startswith("prepared in memory")
    assert prepared.vocab.decode(prepared.ids) == corpus_file.read_text()


def test_nothing_writable_prepares_a_small_corpus_in_memory(corpus_file, monkeypatch):
    from rnn_gpu.data.corpus import prepared_for

    monkeypatch.setattr("rnn_gpu.data.corpus.cache_dirs", lambda spare=None: [Path("/proc/no-such-cache")])
    prepared = prepared_for(str(corpus_file), "chars")
    assert prepared.origin.startswith("prepared in memory")
    assert prepared.vocab.decode(prepared.ids) == corpus_file.read_text()


def test_prepare_beside_a_read_only_corpus(read_only, corpus_file, capsys):
    ro = read_only("data", lambda d: shutil.copy(corpus_file, d / "corpus.txt"))
    line = one_error(capsys, ["prepare", str(ro / "corpus.txt")], 1)
    assert "-o PREFIX" in line
    assert sorted(p.name for p in ro.iterdir()) == ["corpus.txt"]


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


@pytest.fixture
def trained_small_run(corpus_file, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(corpus_file), "--out", str(out), *SMALL, "--steps", "10", "--eval-every", "5"]) == 0
    return out


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(corpus_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["train", str(corpus_file), "--out", str(out), *SMALL, "--steps", "40", "--checkpoint-every", "10",
            "--eval-every", "10"]
    real_savez, calls = np.savez, {"n": 0}

    def savez(f, **arrays):
        calls["n"] += 1
        if int(arrays["step"]) >= 20:  # the disk fills up after step 10's files
            f.write(b"PK partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_savez(f, **arrays)

    monkeypatch.setattr("rnn_gpu.checkpoint.np.savez", savez)
    line = one_error(capsys, args, 1)
    assert "No space left on device" in line and "checkpoint.npz" in line
    saved = load_checkpoint(out)
    assert saved.step == 10
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "checkpoint.npz", "metrics.jsonl"]
    monkeypatch.setattr("rnn_gpu.checkpoint.np.savez", real_savez)
    assert main([*args, "--resume"]) == 0
    assert load_checkpoint(out).step == 40


def test_out_of_memory_names_the_sizes_and_leaves_no_empty_run(corpus_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 64.0 GiB")

    monkeypatch.setattr("rnn_gpu.model.CharRNN.loss_and_grads_on_device", no_memory)
    line = one_error(capsys, ["train", str(corpus_file), "--out", str(out), *SMALL, "--steps", "5"], 1)
    assert "out of memory" in line and "--batch" in line and "--hidden" in line
    assert not out.exists()


def test_a_foreign_file_named_checkpoint(capsys, tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(os.urandom(300))
    line = one_error(capsys, ["sample", str(tmp_path), "--seed", "1"], 2)
    assert "not an rnn_gpu checkpoint" in line and "pickle" not in line


def test_prepare_of_a_missing_file(capsys, tmp_path):
    line = one_error(capsys, ["prepare", str(tmp_path / "nosuch.txt")], 2)
    assert "not found" in line and "glob" not in line


# -- runs that describe themselves ---------------------------------------------
def test_train_describes_the_run_before_the_first_step(corpus_file, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", "train", str(corpus_file), "--out", str(tmp_path / "r"),
                           "--hidden", "8", "--batch", "2", "--seq", "4", "--steps", "30", "--layers", "2",
                           "--backend", "auto"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    for fragment in ("corpus: " + str(corpus_file), "for training", "held out", "vocabulary: ", "2 layers of 8 units",
                     "parameters", "backend: ", "float32", "prepared corpus: "):
        assert fragment in err, (fragment, err)
    assert "\r" not in err  # not a terminal: plain lines, no redraws
    assert len(err) < 4000


def test_quiet_hides_the_description(corpus_file, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", "train", str(corpus_file), "--out", str(tmp_path / "r"),
                           *SMALL, "--steps", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_status_lines_off_a_terminal_are_plain_and_spaced(capsys):
    import io

    from rnn_gpu.training.progress import StatusLines

    stream = io.StringIO()
    bar = StatusLines(total=100, initial=0, interval=3600, stream=stream)
    for _ in range(100):
        bar.set_postfix(loss="1.0")
        bar.update(1)
    bar.close()
    assert stream.getvalue() == "step 100/100 loss 1.0\n"  # one line at the end, none per step


def test_resume_keeps_the_run_length_and_names_ignored_flags(corpus_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", str(corpus_file), "--out", out, *SMALL, "--steps", "20", "--checkpoint-every", "5"]) == 0
    ckpt = load_checkpoint(out)
    ckpt_path = Path(out) / "checkpoint.npz"
    from rnn_gpu.checkpoint import save_checkpoint

    ckpt.step, ckpt.config["steps"] = 10, 30  # as if the run had stopped at step 10 of 30
    save_checkpoint(ckpt_path, ckpt)
    capsys.readouterr()
    assert main(["train", str(corpus_file), "--out", out, "--resume", "--hidden", "64", "--lr", "0.5", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "--hidden" in captured.err and "--lr" in captured.err and "ignored" in captured.err
    assert load_checkpoint(out).step == 30  # the run's own --steps
    assert load_checkpoint(out).params["W"].shape == (8, 8)


def test_sample_falls_back_to_best_and_prints_its_fresh_seed(trained_small_run, capsys):
    (trained_small_run / "checkpoint.npz").unlink()
    assert main(["sample", str(trained_small_run), "--length", "20"]) == 0
    captured = capsys.readouterr()
    seed = int(captured.err.strip().removeprefix("seed: "))
    assert captured.out.endswith("\n") and len(captured.out) == 20 + 1
    assert main(["sample", str(trained_small_run), "--length", "20", "--seed", str(seed)]) == 0
    assert capsys.readouterr().out == captured.out  # the printed seed reproduces it


def test_files_follow_the_umask(trained_small_run, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["plot", str(trained_small_run), "-o", str(tmp_path / "p.png")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.png").stat().st_mode) == 0o640
    for name in ("checkpoint.npz", "best.npz", "metrics.jsonl"):
        assert stat.S_IMODE((trained_small_run / name).stat().st_mode) == 0o666 & ~old, name


# -- a CLI that follows the conventions ----------------------------------------
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


def test_several_corpus_paths_and_directory_selection(tmp_path, capsys):
    from conftest import make_corpus_text

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


def test_bench_seconds_bounds_the_wall_time():
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", "bench", "--backend", "numpy", "--hidden", "64",
                           "--batch", "8", "--seq", "16", "--seconds", "1", "--json"], capture_output=True, text=True,
                          timeout=300)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["chars_per_s"] > 0 and elapsed < 1 + 15  # the second, plus start-up and the recurrence timing


# -- the Python API ------------------------------------------------------------
def test_python_api_trains_loads_and_samples(corpus_file, tmp_path):
    import rnn_gpu

    final = rnn_gpu.train(corpus_file, tmp_path / "api", hidden=16, batch=4, seq=8, steps=20, layers=2,
                          backend="numpy")
    assert final["step"] == 20 and "val_loss" in final
    model, vocab = rnn_gpu.load(tmp_path / "api")
    assert model.layers == 2 and len(vocab) == len(set(corpus_file.read_text()))
    text = rnn_gpu.sample(model, vocab, length=30, prime="the ", seed=3)
    assert text.startswith("the ") and len(text) == 34
    assert model.sample(30, prime="the ", seed=3) == text
    texts = model.sample(10, num_samples=3, seed=1)
    assert len(texts) == 3 and all(len(t) == 10 for t in texts)
    with pytest.raises(rnn_gpu.RnnGpuError, match="hidden"):
        rnn_gpu.train(corpus_file, tmp_path / "bad", hidden=0)
    with pytest.raises(rnn_gpu.UsageError, match="unknown training setting"):
        rnn_gpu.train(corpus_file, tmp_path / "bad", hiden=8)
    with pytest.raises(rnn_gpu.RnnGpuError, match="not found"):
        rnn_gpu.load(tmp_path / "nowhere")


@pytest.mark.parametrize("setting", [{"steps": True}, {"steps": 2.5}, {"lr": "0.1"}, {"lr": float("nan")},
                                     {"warmup": 1.5}, {"include": "*.txt"}, {"backend": "nope"}, {"backend": 3},
                                     {"seed": -1}, {"val_chars": -1}, {"clip": float("inf")}, {"dropout": True}])
def test_python_api_refuses_bad_settings(corpus_file, tmp_path, setting):
    import rnn_gpu

    with pytest.raises(rnn_gpu.UsageError, match=next(iter(setting))):
        rnn_gpu.train(corpus_file, tmp_path / "bad", hidden=8, batch=2, seq=4, **{"steps": 2, **setting})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(rnn_gpu.UsageError, match="out"):
        rnn_gpu.train(corpus_file, None, steps=2)


@pytest.mark.parametrize("option", [{"length": 0}, {"length": "5"}, {"temperature": -1}, {"temperature": float("inf")},
                                    {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}, {"seed": -1}, {"num_samples": 0},
                                    {"prime": 3}])
def test_python_api_refuses_bad_sampling_options(trained_small_run, option):
    import rnn_gpu

    model, vocab = rnn_gpu.load(trained_small_run)
    name = next(iter(option))
    with pytest.raises(rnn_gpu.UsageError, match=name):
        model.sample(**{"length": 5, **option})
    with pytest.raises(rnn_gpu.UsageError, match=name):
        rnn_gpu.sample(model, vocab, **{"length": 5, **option})
    with pytest.raises(rnn_gpu.UsageError, match="backend"):
        rnn_gpu.load(trained_small_run, backend="nope")


SLOW_PREPARE = """
import sys, time
import rnn_gpu.data.prepared as prep
import rnn_gpu.data.sources as sources
from rnn_gpu.cli import main
encode = prep.encoded_chunks
def slowly(paths, vocab, *rest):
    for ids in encode(paths, vocab, *rest):
        time.sleep(0.05)
        yield ids
sources.CHUNK_BYTES, prep.encoded_chunks = 64, slowly
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_prepare_leaves_nothing_half_written(corpus_file, tmp_path, signum):
    """Prepare's writes are slowed down here so the signal lands mid-write."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, "prepare", str(corpus_file), "-o", str(out / "p")],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob(".p.bin.*.tmp")):
        assert time.monotonic() < deadline and proc.poll() is None, "prepare never started writing"
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err.strip() == f"error: terminated by {signal.Signals(signum).name}", err
    assert list(out.iterdir()) == []


def test_closed_standard_streams(trained_small_run, corpus_file, tmp_path):
    """`2>&-` or `>&-`: Python sees None; training runs without its report,
    sampling refuses (there is nowhere to write), neither with a traceback."""
    python = f"{sys.executable} -m rnn_gpu"
    sample = subprocess.run(["bash", "-c", f"{python} sample {trained_small_run} --length 5 --seed 1 >&-"],
                            capture_output=True, text=True, timeout=120)
    assert sample.returncode == 1 and sample.stderr == "error: standard output is closed: nowhere to write the sample\n"
    out = tmp_path / "closed"
    train = subprocess.run(["bash", "-c", f"{python} train {corpus_file} --out {out} {' '.join(SMALL)} --steps 3 2>&-"],
                           capture_output=True, text=True, timeout=120)
    assert train.returncode == 0 and train.stdout.startswith("step 3:"), train.stdout
    assert load_checkpoint(out).step == 3
