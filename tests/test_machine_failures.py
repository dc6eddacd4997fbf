"""What the machine refuses a run: write permission (read-only directories,
as another user, since root ignores permission bits; no writable $HOME or
cache), disk space, memory, its standard streams; and the umask it sets,
which the files follow. Each failure is one `error:` line with exit 1 (the
machine) and leaves nothing half-made."""
import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, one_error

from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main


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


def test_files_follow_the_umask(trained_small_run, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["plot", str(trained_small_run), "-o", str(tmp_path / "p.png")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.png").stat().st_mode) == 0o640
    for name in ("checkpoint.npz", "best.npz", "metrics.jsonl"):
        assert stat.S_IMODE((trained_small_run / name).stat().st_mode) == 0o666 & ~old, name

