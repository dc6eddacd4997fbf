"""Every Python door called with arbitrary values of arbitrary types: only
rnn_gpu.RnnGpuError subclasses escape, and files that existed before a call
are byte-identical after it. `rnn-gpu plot` over arbitrary metrics files
likewise ends in one `error:` line or an image."""
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnn_gpu
from rnn_gpu.training import TrainConfig

pytestmark = pytest.mark.slow  # long fuzzing
FUZZ = settings(max_examples=int(os.environ.get("RNN_GPU_FUZZ_EXAMPLES", 40)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NUMPY = st.one_of(st.integers(-300, 300).map(np.int64), st.integers(0, 255).map(np.uint8),
                  st.floats(width=32).map(np.float32), st.floats().map(np.float64), st.booleans().map(np.bool_),
                  st.text(max_size=4).map(np.str_), st.integers(0, 3).map(np.arange),
                  st.integers(1, 3).map(lambda n: np.zeros((n, n))))
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=12),
                 st.binary(max_size=12), NUMPY, st.just(Path("/nonexistent/x")), st.just(float("nan")))
ANY = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
SETTINGS = [f.name for f in dataclasses.fields(TrainConfig)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A corpus, a finished run and its model, and the bytes of every file there."""
    root = tmp_path_factory.mktemp("doors")
    (root / "c.txt").write_text("to be or not to be, that is the question\n" * 50, encoding="utf-8")
    rnn_gpu.train(str(root / "c.txt"), str(root / "run"), steps=3, hidden=8, batch=2, seq=8, backend="numpy")
    model, vocab = rnn_gpu.load(root / "run")
    return root, model, vocab


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def only_our_errors(call):
    """Calls `call`; returns what it returned, or the RnnGpuError it raised."""
    try:
        return call()
    except rnn_gpu.RnnGpuError as exc:
        assert str(exc) or isinstance(exc, rnn_gpu.errors.QuietExit)
        return exc


@FUZZ
@given(key=st.sampled_from([*SETTINGS, "corpus", "out", "resume", "progress", "comm", "bogus"]), value=ANY)
def test_train_takes_anything_and_checks_it(world, monkeypatch, key, value):
    root, _, _ = world
    before = snapshot(root)
    ran = []
    monkeypatch.setattr(rnn_gpu.api, "_train", lambda cfg, corpus, out, **kw: ran.append(cfg) or {})
    arguments = {"corpus": str(root / "c.txt"), "out": str(root / "fresh"), "steps": 2, "hidden": 8,
                 "backend": "numpy", key: value}
    only_our_errors(lambda: rnn_gpu.train(**arguments))
    for cfg in ran:  # what passed the checks is stored as JSON can hold it
        stored = dataclasses.asdict(cfg.run_length())
        json.dumps(stored, default=lambda v: pytest.fail(f"{v!r} in a checked configuration"))
    assert snapshot(root) == before


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.sampled_from([1, 2, np.int64(2), np.uint8(1)]), hidden=st.sampled_from([4, np.int16(6)]),
       lr=st.sampled_from([None, 0.01, np.float32(0.02)]), dropout=st.sampled_from([0.0, np.float64(0.25)]),
       include=st.sampled_from([("*.txt",), [np.str_("*.txt")]]))
def test_train_with_numpy_values_runs_and_resumes(world, tmp_path_factory, steps, hidden, lr, dropout, include):
    root, _, _ = world
    out = tmp_path_factory.mktemp("np") / "run"
    common = {"hidden": hidden, "batch": 2, "seq": 8, "lr": lr, "dropout": dropout, "backend": "numpy"}
    final = rnn_gpu.train(str(root), out, steps=steps, include=include, **common)
    assert final["step"] == int(steps)
    again = rnn_gpu.train(str(root), out, steps=int(steps) + 1, resume=True, include=include, **common)
    assert again["step"] == int(steps) + 1


@FUZZ
@given(path=ANY, backend=ANY)
def test_load_takes_anything(world, path, backend):
    root, _, _ = world
    before = snapshot(root)
    only_our_errors(lambda: rnn_gpu.load(path, backend=backend))
    assert snapshot(root) == before


@FUZZ
@given(which=st.integers(0, 3), junk=ANY, option=st.sampled_from(["length", "temperature", "top_k", "top_p", "prime",
                                                                  "seed", "num_samples", "vocab", "bogus"]),
       value=ANY)
def test_sample_takes_anything(world, which, junk, option, value):
    _, model, vocab = world
    arguments = [(model, vocab), (junk, vocab), (model, junk), (junk, junk)][which]
    options = {"length": 3, option: value}
    if option == "vocab":
        options.pop("vocab")
        arguments = (model, value)
    if option == "bogus":
        with pytest.raises(TypeError):  # Python's own: an unknown keyword, as for any function
            rnn_gpu.sample(*arguments, **options)
        return
    only_our_errors(lambda: rnn_gpu.sample(*arguments, **options))
    only_our_errors(lambda: model.sample(**options) if which == 0 else None)


@FUZZ
@given(args=st.lists(ANY, min_size=3, max_size=8), params=ANY)
def test_the_model_constructor_takes_anything(args, params):
    only_our_errors(lambda: rnn_gpu.TextRNN(*args))
    only_our_errors(lambda: rnn_gpu.TextRNN(5, 4, "numpy", params=params))


@FUZZ
@given(inputs=ANY, targets=ANY, h0=ANY, dropout=ANY)
def test_the_loss_takes_anything(inputs, targets, h0, dropout):
    model = rnn_gpu.TextRNN(5, 4, "numpy", seed=0)
    only_our_errors(lambda: model.loss_and_grads(inputs, targets, h0))
    only_our_errors(lambda: model.loss([[0, 1]], [[1, 2]], np.zeros((2, 4)), dropout=dropout))


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.floats(allow_nan=False),
                      st.text(max_size=6))
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                                               inner, max_size=3),
                        max_leaves=5)
RECORD = st.fixed_dictionaries({"step": st.one_of(st.integers(0, 100), JSON_ANY),
                                "train_loss": st.one_of(st.floats(0, 5), JSON_ANY)},
                               optional={k: st.one_of(st.floats(), JSON_ANY) for k in
                                         ("symbols", "val_loss", "val_loss_per_char", "lr", "chars")})


@settings(max_examples=int(os.environ.get("RNN_GPU_FUZZ_EXAMPLES", 40)) // 2, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(RECORD.map(json.dumps), st.text(max_size=30)), max_size=6))
def test_plot_takes_any_metrics_file(tmp_path_factory, capsys, lines):
    pytest.importorskip("matplotlib")
    from rnn_gpu.cli import main

    run = tmp_path_factory.mktemp("plot")
    (run / "metrics.jsonl").write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    code = main(["plot", str(run)])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    else:
        assert err == "" and (run / "loss.png").is_file()
