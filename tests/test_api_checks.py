"""The Python doors check what they are given as the command line does: a
UsageError naming the keyword, never Python's own exceptions; NumPy
scalars are taken as the numbers they hold; a vocabulary belongs to its
model; text that is not valid Unicode is one error naming where."""
import json
import re
import warnings

import numpy as np
import pytest

import rnn_gpu
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.data import Vocab

TINY = {"hidden": 8, "batch": 2, "seq": 8, "backend": "numpy", "eval_every": 2}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A trained character model and its vocabulary, and a second run with another vocabulary."""
    root = tmp_path_factory.mktemp("api")
    (root / "a.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 60, encoding="utf-8")
    (root / "b.txt").write_text("ABCDEFGHIJ KLMNOPQRSTUVWXYZ 0123456789\n" * 60, encoding="utf-8")
    rnn_gpu.train(str(root / "a.txt"), str(root / "a"), steps=4, **TINY)
    rnn_gpu.train(str(root / "b.txt"), str(root / "b"), steps=4, **TINY)
    return rnn_gpu.load(root / "a"), rnn_gpu.load(root / "b"), root


def test_numpy_scalars_are_settings_and_stored_as_python_numbers(tmp_path, corpus_file):
    final = rnn_gpu.train(corpus_file, tmp_path / "run", steps=np.int64(3), hidden=np.int32(8), batch=np.int64(2),
                          seq=np.uint8(8), lr=np.float32(0.01), dropout=np.float64(0.1), backend=np.str_("numpy"),
                          skip_nonfinite=np.bool_(False))
    assert final["step"] == 3
    config = load_checkpoint(tmp_path / "run").config
    assert (config["steps"], config["hidden"], config["seq"]) == (3, 8, 8)
    assert all(type(config[k]) is int for k in ("steps", "hidden", "batch", "seq"))
    assert type(config["lr"]) is float and type(config["skip_nonfinite"]) is bool


@pytest.mark.parametrize("call, keyword", [
    (lambda tmp: rnn_gpu.train(None, None, steps=1), "out="),
    (lambda tmp: rnn_gpu.train(3, tmp / "r", steps=1), "corpus="),
    (lambda tmp: rnn_gpu.train([], tmp / "r", steps=1), "corpus="),
    (lambda tmp: rnn_gpu.train([None], tmp / "r", steps=1), "corpus="),
    (lambda tmp: rnn_gpu.train(None, tmp / "r", steps=1, resume="yes"), "resume="),
    (lambda tmp: rnn_gpu.train(None, tmp / "r", steps=1, progress=1), "progress="),
    (lambda tmp: rnn_gpu.train(None, tmp / "r", steps=1, comm=object()), "comm="),
    (lambda tmp: rnn_gpu.train(None, "x\0y", steps=1), "out="),
    (lambda tmp: rnn_gpu.load(None), "path="),
    (lambda tmp: rnn_gpu.load(3.5), "path="),
    (lambda tmp: rnn_gpu.load(b"runs"), "path="),
])
def test_a_path_or_flag_of_the_wrong_type_is_a_usage_error(tmp_path, call, keyword):
    with pytest.raises(rnn_gpu.UsageError, match=keyword):
        call(tmp_path)
    assert not (tmp_path / "r").exists()


def test_errors_for_python_callers_name_keywords(tmp_path):
    (tmp_path / "c.txt").write_text("short text", encoding="utf-8")
    with pytest.raises(rnn_gpu.UsageError, match=r"batch=32 streams of seq=64") as caught:
        rnn_gpu.train(tmp_path / "c.txt", tmp_path / "r", steps=1, backend="numpy")
    assert "--" not in str(caught.value)


def test_the_command_line_names_the_flags_for_the_same_error(tmp_path, capsys):
    from rnn_gpu.cli import main

    (tmp_path / "c.txt").write_text("short text", encoding="utf-8")
    assert main(["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "r"), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--batch 32 streams of --seq 64" in err and "batch=" not in err, err


def test_sampling_checks_the_model_and_its_vocabulary(loaded):
    (model, vocab), (other_model, other_vocab), _ = loaded
    assert len(vocab) != len(other_vocab)
    cases = [((("not a model", vocab), {}), "model="), (((model, "abc"), {}), "vocab="),
             (((model, other_vocab), {}), "another model's vocabulary"),
             (((other_model, vocab), {}), "another model's vocabulary"),
             (((model, Vocab.bytes256()), {}), "another model's vocabulary")]
    for (args, options), fragment in cases:
        with pytest.raises(rnn_gpu.UsageError, match=fragment):
            rnn_gpu.sample(*args, length=5, **options)
    same_size = Vocab("chars", tuple(range(200, 200 + len(vocab))))
    with pytest.raises(rnn_gpu.UsageError, match="differs from the model's own vocabulary"):
        model.sample(5, vocab=same_size)
    assert isinstance(model.sample(5, vocab=vocab, seed=1), str)


@pytest.mark.parametrize("option", [{"length": 10**8}, {"num_samples": 5000}, {"top_k": 10**8}, {"length": True},
                                    {"temperature": float("nan")}, {"seed": -1}, {"prime": b"ab"}])
def test_sampling_options_have_the_command_lines_bounds(loaded, option):
    (model, vocab), _, _ = loaded
    with pytest.raises(rnn_gpu.UsageError, match=f"{next(iter(option))}="):
        rnn_gpu.sample(model, vocab, **{"length": 5, **option})


def test_numpy_scalars_are_sampling_options(loaded):
    (model, vocab), _, _ = loaded
    text = rnn_gpu.sample(model, vocab, length=np.int64(12), temperature=np.float32(0.5), seed=np.uint32(3),
                          num_samples=np.int8(1), top_k=np.int16(4))
    assert text == rnn_gpu.sample(model, vocab, length=12, temperature=0.5, seed=3, top_k=4)


@pytest.mark.parametrize("prime, fragment", [("th\udcffe", "byte 0xFF (not UTF-8) at position 2"),
                                             ("a\ud800", "U+D800 (a lone surrogate) at position 1"),
                                             ("the Z", "U+005A ('Z') at position 4")])
def test_a_prime_the_vocabulary_cannot_hold_is_named_by_position(loaded, prime, fragment):
    (model, vocab), _, _ = loaded
    with pytest.raises(rnn_gpu.UsageError, match=re.escape(fragment)):
        rnn_gpu.sample(model, vocab, length=3, prime=prime)


@pytest.mark.parametrize("temperature", [5e-324, 1e-310, np.finfo(np.float64).tiny / 2])
def test_a_subnormal_temperature_is_greedy_without_warnings(loaded, temperature):
    (model, vocab), _, _ = loaded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = rnn_gpu.sample(model, vocab, length=40, temperature=temperature, seed=5, prime="the ")
    assert text == rnn_gpu.sample(model, vocab, length=40, temperature=0, seed=5, prime="the ")


def test_a_tiny_normal_temperature_draws_the_most_likely_without_warnings(loaded):
    (model, vocab), _, _ = loaded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = rnn_gpu.sample(model, vocab, length=40, temperature=1e-300, seed=5, prime="the ")
    assert text == rnn_gpu.sample(model, vocab, length=40, temperature=0, seed=5, prime="the ")


@pytest.mark.parametrize("args, keyword", [
    (("65", 8, "numpy"), "vocab_size="), ((65, 0, "numpy"), "hidden_size="), ((65, 8, "nope"), "backend"),
    ((65, 8, object()), "backend="), ((65, 8, "numpy", "int8"), "dtype="), ((65, 8, "numpy", "float32", -1), "seed="),
    ((10**6, 16384, "numpy"), "GiB"),
])
def test_the_models_constructor_checks_its_arguments(args, keyword):
    with pytest.raises(rnn_gpu.UsageError, match=keyword):
        rnn_gpu.TextRNN(*args)


def test_the_models_constructor_checks_given_parameters():
    model = rnn_gpu.TextRNN(5, 4, "numpy", seed=1)
    params = {k: rnn_gpu.get_backend("numpy").to_host(v).copy() for k, v in model.params.items()}
    assert np.array_equal(rnn_gpu.TextRNN(5, 4, "numpy", params=params).params["W"], params["W"])
    for damage, fragment in ((lambda p: p.pop("V"), "lacks V"), (lambda p: p.update(W=np.zeros((3, 3))), "W must"),
                             (lambda p: p.update(c=np.full(5, np.nan)), "c must"),
                             (lambda p: p.update(b="x"), "b must")):
        broken = {k: v.copy() for k, v in params.items()}
        damage(broken)
        with pytest.raises(rnn_gpu.UsageError, match=fragment):
            rnn_gpu.TextRNN(5, 4, "numpy", params=broken)
    with pytest.raises(rnn_gpu.UsageError, match="params="):
        rnn_gpu.TextRNN(5, 4, "numpy", params=[1, 2])


@pytest.mark.parametrize("inputs, targets, h0, keyword", [
    ("ab", [[0]], None, "inputs="), ([[7]], [[0]], np.zeros((1, 4)), "inputs="),
    ([[0.5]], [[0]], np.zeros((1, 4)), "inputs="), ([[0]], [[-1]], np.zeros((1, 4)), "targets="),
    ([[0, 1]], [[0]], np.zeros((2, 4)), "shape"), ([[0]], [[0]], np.zeros((2, 4)), "h0="),
    ([[0]], [[0]], np.full((1, 4), np.inf), "h0="), ([[0]], [[0]], "h", "h0="), (np.zeros((0, 1), int), [[0]], None,
                                                                                 "inputs="),
])
def test_the_loss_checks_its_window(inputs, targets, h0, keyword):
    model = rnn_gpu.TextRNN(5, 4, "numpy", seed=1)
    for call in (model.loss, model.loss_and_grads, model.loss_and_grads_with_h0):
        with pytest.raises(rnn_gpu.UsageError, match=keyword):
            call(inputs, targets, h0)


def test_a_failed_train_leaves_the_directory_a_second_train_accepts(tmp_path, corpus_file):
    with pytest.raises(rnn_gpu.UsageError):
        rnn_gpu.train(corpus_file, tmp_path / "run", steps=3, hidden=8, batch=2, seq=8, min_lr=5.0, backend="numpy")
    assert not (tmp_path / "run").exists()
    final = rnn_gpu.train(corpus_file, tmp_path / "run", steps=3, hidden=8, batch=2, seq=8, backend="numpy")
    assert final["step"] == 3 and json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
