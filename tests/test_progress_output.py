"""What the commands tell the user on stderr: a run's description before its
first step (nothing with --quiet), status lines off a terminal, the flags a
resume ignores, the seed a sample drew."""
import subprocess
import sys
from pathlib import Path

from helpers import SMALL

from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main


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

