"""Files the program reads that it wrote itself (kernel choices, prepared
corpora in the cache, checkpoints, metrics) are read defensively: only a
regular file is opened (a FIFO never blocks a run), anything unexpected in a
cache counts as absent or is made again, and a user's file that is not what
it should be is one `error:` line naming it. Each case runs in a child
process with a timeout, so a hang fails the test instead of the suite."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_gpu.tuning_cache import FILENAME as CHOICES

pytestmark = pytest.mark.slow  # every case starts child processes (a hang fails by timeout)
TRAIN = ["--hidden", "8", "--batch", "2", "--seq", "8", "--steps", "4", "--eval-every", "2", "--quiet"]


def rnn_gpu(*args, env=None, timeout=60):
    """`rnn-gpu ARGS` in a child process: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", *map(str, args)], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def one_error(code, err, expected_code=2, fragment=""):
    lines = err.strip().splitlines()
    assert code == expected_code and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("content", ["[[1, 2, 3, 4]]", '[["dev", [1], [[1]], {"tile": 3}]]', "[" * 100000,
                                     '{"rows": 1}', "\xff\xfe", "FIFO", "DIR"])
def test_whatever_is_found_as_the_kernel_choices_is_no_choice(tmp_path, corpus_file, content):
    cache = tmp_path / "cache"
    cache.mkdir()
    where = cache / CHOICES
    if content == "FIFO":
        os.mkfifo(where)
    elif content == "DIR":
        where.mkdir()
    else:
        where.write_bytes(content.encode("utf-8", "surrogateescape"))
    code, out, err = rnn_gpu("train", corpus_file, "--out", tmp_path / "run", *TRAIN, "--backend", "numpy",
                             env={"RNN_GPU_CACHE": str(cache)})
    assert code == 0 and err == "", err


def test_kernel_choices_of_any_structure_are_adopted_only_if_they_are_plans(opencl, tmp_path, corpus_file):
    """On the kernel backend: rows of the right device and shape but no plan of it are timed again."""
    from rnn_gpu.backends.opencl_backend import OpenCLBackend

    label = OpenCLBackend().kernels.device_label
    shape = [8, 2, 8, "<f4", None]
    rows = [[label, "tuned_plan", shape, {"variant": "tiled", "grid": -1, "block": 10**9, "shared_bytes": 1,
                                          "groups": 0, "parts": 0, "tile": [1, 4]}],
            [label, "tuned_plan", shape, {"variant": "tiled", "tile": "x"}],
            [label, "tuned_plan", [8, 2, 8, "<f4", "warp"], None], [label, ["tuned_plan"], shape, None],
            [label, "softmax_variant", [[16], 65, "<f4"], "rows"], [label, "softmax_variant", [16, 65], "rows"],
            [label, "tuned_plan", shape, {"variant": "tiled", "tile": ["8\" -DX", 4]}]]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CHOICES).write_text(json.dumps(rows))
    code, out, err = rnn_gpu("train", corpus_file, "--out", tmp_path / "run", *TRAIN, "--backend", "opencl",
                             env={"RNN_GPU_CACHE": str(cache)}, timeout=300)
    assert code == 0 and err == "", err


def test_a_checkpoint_that_is_a_fifo_is_one_error(tmp_path, trained_small_run):
    import rnn_gpu as api

    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    one_error(*rnn_gpu("sample", fifo, "--length", "5")[::2], fragment="not a regular file")
    with pytest.raises(api.UsageError, match="not a regular file"):
        api.load(fifo)
    (trained_small_run / "checkpoint.npz").unlink()
    os.mkfifo(trained_small_run / "checkpoint.npz")
    one_error(*rnn_gpu("train", "--out", trained_small_run, "--resume", "--quiet")[::2], fragment="not a regular file")


def test_a_metrics_file_that_is_a_fifo_is_one_error(tmp_path, corpus_file, trained_small_run):
    os.replace(trained_small_run / "metrics.jsonl", tmp_path / "kept.jsonl")
    os.mkfifo(trained_small_run / "metrics.jsonl")
    one_error(*rnn_gpu("plot", trained_small_run)[::2], fragment="not a regular file")
    one_error(*rnn_gpu("train", "--out", trained_small_run, "--resume", "--steps", "20", "--quiet")[::2],
              fragment="not a regular file")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    os.mkfifo(fresh / "metrics.jsonl")
    one_error(*rnn_gpu("train", corpus_file, "--out", fresh, *TRAIN, "--backend", "numpy")[::2],
              fragment="not a regular file")


@pytest.mark.parametrize("field, value", [("train_loss", {"a": 1}), ("step", [1]), ("train_loss", True),
                                          ("val_loss", "1.5"), ("lr", None), ("symbols", {"x": []})])
def test_plot_names_a_record_whose_number_is_no_number(trained_small_run, field, value):
    path = trained_small_run / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[1][field] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    one_error(*rnn_gpu("plot", trained_small_run)[::2], fragment=f"{path}:2: not a metrics record")


def test_plot_leaves_out_numbers_no_axis_can_draw(trained_small_run):
    pytest.importorskip("matplotlib")
    path = trained_small_run / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["train_loss"], records[1]["lr"] = float("nan"), 10**400
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, err = rnn_gpu("plot", trained_small_run)
    assert code == 0 and err == "" and (trained_small_run / "loss.png").stat().st_size > 0, err


def test_old_metrics_keys_still_plot(trained_small_run):
    from rnn_gpu.training.metrics import read_metrics

    path = trained_small_run / "metrics.jsonl"
    old = {"symbols": "chars", "symbols_per_s": "chars_per_s", "val_symbols": "val_chars",
           "val_chars": "val_text_chars", "val_part_symbols": "val_part_chars"}
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({old.get(k, k): v for k, v in r.items()}) + "\n" for r in records))
    assert read_metrics(path) == records
    code, out, err = rnn_gpu("plot", trained_small_run)
    assert code == 0 and err == "", err


def test_a_damaged_cached_word_corpus_is_prepared_again(tmp_path):
    corpus = tmp_path / "words.txt"
    corpus.write_text("the cat sat on the mat. " * 200, encoding="utf-8")  # every token fits the vocabulary
    cache, run = tmp_path / "cache", ["--vocab", "words", "--vocab-size", "100", *TRAIN, "--backend", "numpy"]
    code, _, err = rnn_gpu("train", corpus, "--out", tmp_path / "a", *run, env={"RNN_GPU_CACHE": str(cache)})
    assert code == 0, err
    (data,) = [p for p in cache.glob("*.bin") if not p.name.endswith(".unk.bin")]
    data.write_bytes(bytes(data.stat().st_size))  # every id the unknown token, but no unknown lengths
    code, _, err = rnn_gpu("train", corpus, "--out", tmp_path / "b", *run, env={"RNN_GPU_CACHE": str(cache)})
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1 and lines[0].startswith("note: the cached corpus "), err
    assert "preparing it again" in lines[0]
    ids = np.fromfile(data, dtype=np.uint8)
    assert ids.any()  # made again


def test_an_id_beyond_the_vocabulary_in_a_cached_corpus_names_the_cache_file(tmp_path, corpus_file):
    cache = tmp_path / "cache"
    code, _, err = rnn_gpu("train", corpus_file, "--out", tmp_path / "a", *TRAIN, "--backend", "numpy",
                           env={"RNN_GPU_CACHE": str(cache)})
    assert code == 0, err
    (data,) = cache.glob("*.bin")
    raw = bytearray(data.read_bytes())
    raw[5] = 250
    data.write_bytes(bytes(raw))
    code, _, err = rnn_gpu("train", corpus_file, "--out", tmp_path / "b", *TRAIN, "--backend", "numpy",
                           env={"RNN_GPU_CACHE": str(cache)})
    one_error(code, err, 2, "a cached preparation of the corpus: delete it to prepare it again")
    assert str(cache) in err


def test_a_prime_with_a_byte_that_is_not_utf8_from_the_command_line(tmp_path, trained_small_run):
    code, out, err = rnn_gpu("sample", trained_small_run, "--prime", os.fsdecode(b"the \xff"), "--length", "5")
    one_error(code, err, 2, "byte 0xFF (not UTF-8) at position 4")
    corpus = tmp_path / "b.txt"
    corpus.write_bytes(bytes(range(256)) * 20)
    code, _, err = rnn_gpu("train", corpus, "--out", tmp_path / "bytes", "--vocab", "bytes", *TRAIN, "--backend",
                           "numpy")
    assert code == 0, err
    proc = subprocess.run([sys.executable, "-m", "rnn_gpu", "sample", str(tmp_path / "bytes"), "--prime",
                           os.fsdecode(b"a\xffb"), "--length", "3", "--seed", "1"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("a\ufffdb".encode()), proc.stderr  # as text: U+FFFD
