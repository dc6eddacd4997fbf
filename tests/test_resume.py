"""Exact resume, interrupt-safe checkpoints, signals and the non-finite guard."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import whole_and_resumed

from rnn_gpu import checkpoint as ckpt_io
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main
from rnn_gpu.errors import EnvironmentFailure
from rnn_gpu.fileio import atomic_write
from rnn_gpu.model import CharRNN
from rnn_gpu.training import Diverged, TrainConfig, train

SMALL = ["--hidden", "16", "--batch", "4", "--seq", "8", "--quiet", "--eval-every", "10", "--log-every", "5"]


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_resume_is_bit_identical(corpus_file, tmp_path, optimizer):
    # A constant rate: a cosine over --steps 20 is not the first half of one over 40 (warm-up is; see below).
    common = [str(corpus_file), *SMALL, "--backend", "numpy", "--optimizer", optimizer, "--lr-schedule", "constant"]
    assert main(["train", *common, "--out", str(tmp_path / "whole"), "--steps", "40"]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "split"), "--steps", "20"]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "split"), "--steps", "40", "--resume"]) == 0
    whole, split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    assert whole.step == split.step == 40 and whole.position == split.position
    for k in "UWVbc":
        assert np.array_equal(whole.params[k], split.params[k]), k
    for k in whole.optimizer_state:
        assert np.array_equal(whole.optimizer_state[k], split.optimizer_state[k]), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 40  # appended, not restarted


def test_resume_rewinds_the_metrics_to_the_checkpoint(corpus_file, tmp_path):
    """Steps past the checkpoint (undone by an interruption, run again) and a
    line torn by a kill are dropped: every step is logged once, in order."""
    out = tmp_path / "run"
    common = [str(corpus_file), *SMALL, "--backend", "numpy", "--out", str(out), "--log-every", "5"]
    assert main(["train", *common, "--steps", "20"]) == 0
    log = out / "metrics.jsonl"
    before = log.read_text()
    with log.open("a") as f:
        f.write(json.dumps({"step": 25, "train_loss": 9.0}) + "\n" + '{"step": 30, "train_lo')
    assert main(["train", *common, "--steps", "30", "--resume"]) == 0
    after = log.read_text()
    assert after.startswith(before)
    steps = [json.loads(line)["step"] for line in after.splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30] and json.loads(after.splitlines()[4])["train_loss"] != 9.0


def test_starting_over_drops_the_earlier_runs_best(corpus_file, tmp_path):
    out = tmp_path / "run"
    common = [str(corpus_file), *SMALL, "--backend", "numpy", "--out", str(out)]
    assert main(["train", *common, "--steps", "10"]) == 0 and (out / ckpt_io.BEST_FILENAME).exists()
    assert main(["train", *common, "--steps", "5", "--force", "--val-fraction", "0"]) == 0  # no evaluation: no best
    assert not (out / ckpt_io.BEST_FILENAME).exists() and load_checkpoint(out).step == 5


def test_a_second_run_into_a_busy_directory_is_refused(corpus_file, tmp_path, capsys):
    """The run directory is locked while a run uses it (here: a lock held as a
    running rnn-gpu holds it); the lock goes with the run."""
    import fcntl

    out = tmp_path / "run"
    assert main(["train", str(corpus_file), *SMALL, "--backend", "numpy", "--out", str(out), "--steps", "10"]) == 0
    common = [str(corpus_file), "--quiet", "--out", str(out)]  # the model's flags come from the checkpoint
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        capsys.readouterr()
        assert main(["train", *common, "--steps", "20", "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "in use by another run" in err and len(err.splitlines()) == 1
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    finally:
        os.close(fd)
    assert main(["train", *common, "--steps", "20", "--resume"]) == 0  # released: it runs
    assert main(["train", *common, "--steps", "30", "--resume"]) == 0  # and the finished run let go too


def test_stacked_dropout_cosine_run_resumes_bit_identically(corpus_file, tmp_path):
    common = [str(corpus_file), *SMALL, "--backend", "numpy", "--layers", "2", "--dropout", "0.2",
              "--lr-schedule", "cosine", "--warmup", "20"]
    whole, split = whole_and_resumed(main, common, tmp_path, 40)
    assert whole.step == split.step == 40 and whole.position == split.position
    assert set(whole.params) == {"U", "W", "b", "U2", "W2", "b2", "V", "c"} and whole.h.shape == (2, 4, 16)
    for k in whole.params:
        assert np.array_equal(whole.params[k], split.params[k]), k
    for k in whole.optimizer_state:
        assert np.array_equal(whole.optimizer_state[k], split.optimizer_state[k]), k
    assert np.array_equal(whole.h, split.h)
    records = {name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
               for name in ("whole", "split")}
    assert [r["lr"] for r in records["whole"]] == [r["lr"] for r in records["split"]]
    assert [r["train_loss"] for r in records["whole"]] == [r["train_loss"] for r in records["split"]]
    assert records["split"][-1]["elapsed_s"] > records["split"][1]["elapsed_s"]  # counts on across the resume


def test_resume_needs_a_checkpoint_and_more_steps(corpus_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", str(corpus_file), *SMALL, "--out", out, "--steps", "10", "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", str(corpus_file), *SMALL, "--out", out, "--steps", "10"]) == 0
    assert main(["train", str(corpus_file), *SMALL, "--out", out, "--steps", "10", "--resume"]) == 2
    assert "already at step 10" in capsys.readouterr().err


def test_best_checkpoint_tracks_the_lowest_validation_loss(corpus_file, tmp_path):
    train(TrainConfig(hidden=16, batch=4, seq=8, steps=60, eval_every=10, backend="numpy"), corpus_file,
          tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    best = min(r["val_loss"] for r in records if "val_loss" in r)
    assert load_checkpoint(tmp_path / ckpt_io.BEST_FILENAME).best_val_loss == pytest.approx(best)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"new but unfinished")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(EnvironmentFailure, match="f.bin failed: No space left on device"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def start_training(corpus_file, out, *extra):
    cmd = [sys.executable, "-m", "rnn_gpu", "train", str(corpus_file), "--out", str(out), "--steps", "100000",
           "--hidden", "32", "--batch", "8", "--seq", "16", "--quiet", "--backend", "numpy", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, timeout=60):
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow  # a training process killed after random waits
def test_kill_9_leaves_a_loadable_checkpoint(corpus_file, tmp_path, rng):
    out = tmp_path / "run"
    proc = start_training(corpus_file, out, "--checkpoint-every", "1")
    wait_for(out / "checkpoint.npz")
    for _ in range(5):  # kill at random moments of a run that rewrites its checkpoint every step
        time.sleep(float(rng.uniform(0.05, 0.3)))
        load_checkpoint(out)  # loadable while being rewritten
    proc.kill()
    proc.wait()
    assert load_checkpoint(out).step >= 1


@pytest.mark.slow  # a training process per signal, signalled after a wait
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_finishes_the_step_and_checkpoints(corpus_file, tmp_path, signum, code):
    out = tmp_path / "run"
    proc = start_training(corpus_file, out, "--checkpoint-every", "1000000", "--log-every", "1")
    wait_for(out / "metrics.jsonl")
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().startswith("error: interrupted by") and "Traceback" not in err
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert load_checkpoint(out).step == last["step"] > 0


def poison_step(monkeypatch, bad_step):
    """Makes the gradient of W NaN at one step."""
    original = CharRNN.loss_and_grads_on_device
    calls = {"n": 0}

    def patched(self, *args):
        loss, grads, h = original(self, *args)
        calls["n"] += 1
        if calls["n"] == bad_step:
            grads["W"][0, 0] = np.nan
        return loss, grads, h

    monkeypatch.setattr(CharRNN, "loss_and_grads_on_device", patched)


def test_non_finite_gradient_stops_and_keeps_the_last_good_checkpoint(corpus_file, tmp_path, monkeypatch):
    poison_step(monkeypatch, 7)
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=20, checkpoint_every=5, val_fraction=0, backend="numpy")
    with pytest.raises(Diverged, match="non-finite gradient at step 7"):
        train(cfg, corpus_file, tmp_path, progress=False)
    kept = load_checkpoint(tmp_path)
    assert kept.step == 5 and all(np.isfinite(p).all() for p in kept.params.values())


def test_non_finite_steps_can_be_skipped(corpus_file, tmp_path, monkeypatch):
    poison_step(monkeypatch, 7)
    cfg = TrainConfig(hidden=16, batch=4, seq=8, steps=20, val_fraction=0, backend="numpy", skip_nonfinite=True)
    final = train(cfg, corpus_file, tmp_path, progress=False)
    assert final["step"] == 20 and final["skipped_steps"] == 1
    assert all(np.isfinite(p).all() for p in load_checkpoint(tmp_path).params.values())


def test_plot(tmp_path, corpus_file, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert main(["train", str(corpus_file), *SMALL, "--out", str(out), "--steps", "20"]) == 0
    assert main(["plot", str(out)]) == 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path)]) == 2
    assert "no metrics file" in capsys.readouterr().err
