"""`rnn-gpu inspect` and `rnn_gpu.inspect`: the gradient of the last step's
loss against distance (held to central finite differences), what W's
spectral norm does to it, saturation, the files written and every bad input
as one error line; and the trainer's per-layer measures at evaluations,
which `plot` draws (and old records without them still plot)."""
import dataclasses
import json

import numpy as np
import pytest
from helpers import SMALL, assert_usage_error, make_corpus_text, numerical_gradient, one_error

import rnn_gpu
from rnn_gpu.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnn_gpu.cli import main
from rnn_gpu.data.corpus import load_corpus
from rnn_gpu.inspection import measures
from rnn_gpu.layout import layer_names
from rnn_gpu.model import TextRNN, init_params
from rnn_gpu.training import TrainConfig
from rnn_gpu.training.metrics import parse_record


def random_params(rng, V, H, L, scale=0.6):
    params = {k: rng.normal(0, scale / np.sqrt(max(v.shape[-1], 1)), size=v.shape)
              for k, v in init_params(V, H, 0, L).items()}
    return params


def orthogonal(rng, H):
    q, r = np.linalg.qr(rng.normal(size=(H, H)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("layers", [1, 3])
def test_last_step_gradients_match_central_finite_differences(rng, layers):
    V, H, T, B = 5, 4, 6, 2
    params = random_params(rng, V, H, layers, scale=1.5)
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=B)
    h0 = rng.uniform(-0.5, 0.5, size=(layers, B, H))
    losses, grads, states = measures.last_step_gradients(params, inputs, targets, h0)
    np.testing.assert_allclose(losses, measures.last_step_loss(params, states[-1][-1], targets))
    for k in range(1, layers + 1):
        for t in range(T):
            h = states[k - 1][t].copy()

            def loss():
                replaced = measures.forward(params, inputs, h0, replace=(k, t, h))  # noqa: B023
                return measures.last_step_loss(params, replaced[-1][-1], targets).sum()

            numeric = numerical_gradient(loss, h)
            np.testing.assert_allclose(grads[k - 1][t], numeric, rtol=1e-6, atol=1e-9, err_msg=f"layer {k} t {t}")


def test_the_forward_pass_is_the_models(rng):
    """What is measured is the model that trains: the same states and loss as TextRNN's, in float64."""
    V, H, L, T, B = 7, 6, 2, 5, 3
    params = random_params(rng, V, H, L)
    model = TextRNN(V, H, "numpy", dtype="float64", params=params)
    window = rng.integers(0, V, size=(T + 1, B))
    h0 = rng.uniform(-0.5, 0.5, size=(L, B, H))
    states = measures.forward(params, window[:-1], h0)
    loss, h_last = model.loss(window[:-1], window[1:], h0)
    np.testing.assert_allclose(np.stack([s[-1] for s in states]), h_last, rtol=1e-12, atol=1e-12)
    last = measures.last_step_loss(params, states[-1][-1], window[-1])
    full = [measures.last_step_loss(params, states[-1][t], window[t + 1]) for t in range(T)]
    assert np.mean(full) == pytest.approx(loss, rel=1e-12)
    assert np.array_equal(last, full[-1])


def distance_profile(rng, W_scale_to, orthogonal_W=False, T=65, H=32, V=10, B=4):
    """The mean ||dL_T/dh_t|| by distance 0..T-1 of a one-layer model whose W has spectral norm `W_scale_to`."""
    params = random_params(rng, V, H, 1)
    W = orthogonal(rng, H) if orthogonal_W else rng.normal(size=(H, H))
    params["W"] = W * (W_scale_to / np.linalg.norm(W, 2))
    params["U"] *= 0.05  # small inputs and no bias: the units stay near the linear regime, where W alone decides
    params["b"][:] = 0
    _, grads, _ = measures.last_step_gradients(params, rng.integers(0, V, (T, B)), rng.integers(0, V, B),
                                               np.zeros((1, B, H)))
    return measures.norms_by_distance(grads[0]).mean(axis=1)


def test_spectral_norm_half_makes_the_gradient_fall_by_at_least_1e3_over_64_steps(rng):
    profile = distance_profile(rng, 0.5)
    assert profile[64] < profile[0] * 1e-3
    assert profile[64] <= profile[0] * 0.5 ** 64 * 10  # ||dh_{t-1}|| <= ||W||_2 ||dh_t||, tanh' <= 1


def test_near_the_edge_of_chaos_the_gradient_does_not_fall_as_fast(rng):
    half, edge = distance_profile(rng, 0.5), distance_profile(rng, 1.0, orthogonal_W=True)
    assert edge[64] > edge[0] * 0.3  # an orthogonal W of norm 1 nearly keeps the norm (0.72 to 0.89 measured)
    assert edge[64] / edge[0] > 1e10 * half[64] / half[0]


def test_huge_weights_saturate_nearly_every_unit(rng):
    params = random_params(rng, 6, 16, 2)
    for k in (1, 2):
        for name in layer_names(k)[:2]:
            params[name] = params[name] * 200
    _, _, states = measures.last_step_gradients(params, rng.integers(0, 6, (20, 3)), rng.integers(0, 6, 3),
                                                np.zeros((2, 3, 16)))
    assert all(measures.saturation(s) > 0.95 for s in states)
    small = random_params(rng, 6, 16, 1, scale=0.1)
    assert measures.saturation(measures.forward(small, rng.integers(0, 6, (20, 3)), np.zeros((1, 3, 16)))[0]) == 0


def test_largest_singular_value(rng):
    W = rng.normal(size=(40, 40))
    assert measures.largest_singular_value(W) == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-12)
    q = orthogonal(rng, 8) * 0.7
    assert measures.largest_singular_value(q) == pytest.approx(0.7, rel=1e-12)
    assert measures.largest_singular_value(np.zeros((3, 3))) == 0


# -- the command and the Python door ------------------------------------------------
def test_the_command_writes_both_files_and_the_json_says_what_it_measured(trained_small_run, corpus_file, capsys):
    pytest.importorskip("matplotlib")
    assert main(["inspect", str(trained_small_run)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "sigma_max" in out
    report = json.loads((trained_small_run / "inspect.json").read_text(encoding="utf-8"))
    assert (trained_small_run / "inspect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(trained_small_run)
    assert report["path"] == str(trained_small_run / "checkpoint.npz") and report["step"] == 10
    assert report["seq"] == 4 and report["corpus"] == [str(corpus_file.resolve())]
    assert 1 <= report["windows"] <= 8 and report["streams"] == 2
    (layer,) = report["layers"]
    assert set(layer) == {"layer", "grad_norm_by_distance", "saturation", "largest_singular_value"}
    assert len(layer["grad_norm_by_distance"]) == 4 and all(g > 0 for g in layer["grad_norm_by_distance"])
    assert 0 <= layer["saturation"] <= 1
    assert layer["largest_singular_value"] == pytest.approx(np.linalg.norm(ckpt.params["W"].astype(float), 2))


def test_seq_output_and_corpus_given(trained_small_run, corpus_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    other = tmp_path / "other.txt"
    other.write_text(make_corpus_text(5_000, seed=9), encoding="utf-8")  # the same symbols, other text
    prefix = tmp_path / "measured"
    assert main(["inspect", str(trained_small_run / "checkpoint.npz"), "--seq", "12", "--corpus", str(other),
                 "-o", str(prefix) + ".json"]) == 0
    report = json.loads((tmp_path / "measured.json").read_text(encoding="utf-8"))
    assert (tmp_path / "measured.png").is_file() and not (trained_small_run / "inspect.json").exists()
    assert report["seq"] == 12 and len(report["layers"][0]["grad_norm_by_distance"]) == 12
    assert report["corpus"] == [str(other)]
    got = rnn_gpu.inspect(trained_small_run, seq=np.int64(6), output=tmp_path)  # a directory: inside it
    assert got["seq"] == 6 and json.loads((tmp_path / "inspect.json").read_text()) == got


def test_a_safetensors_export_measures_as_its_checkpoint(trained_small_run, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("safetensors")
    exported = rnn_gpu.export(trained_small_run, "safetensors", tmp_path / "model.safetensors")
    got = rnn_gpu.inspect(exported)
    want = rnn_gpu.inspect(trained_small_run, output=tmp_path / "checkpoint")
    assert got["step"] is None and want["step"] == 10 and got["output"] == str(tmp_path / "inspect")
    for a, b in zip(got["layers"], want["layers"], strict=True):
        np.testing.assert_allclose(a["grad_norm_by_distance"], b["grad_norm_by_distance"], rtol=1e-12)


def test_an_untrained_deep_model(corpus_file, tmp_path):
    """Step 0, three layers, from a checkpoint written by hand: each layer its own line."""
    pytest.importorskip("matplotlib")
    corpus = load_corpus([str(corpus_file)], "chars", 0.1)
    cfg = TrainConfig(hidden=12, layers=3, batch=3, seq=10, steps=100, time=None)
    params = init_params(len(corpus.vocab), 12, 1, 3)
    path = tmp_path / "untrained.npz"
    save_checkpoint(path, Checkpoint(params=params, vocab=corpus.vocab,
                                     config={**dataclasses.asdict(cfg), "corpus": [str(corpus_file)]}))
    report = rnn_gpu.inspect(path)
    assert report["step"] == 0 and [layer["layer"] for layer in report["layers"]] == [1, 2, 3]
    assert report["output"] == str(tmp_path / "inspect") and (tmp_path / "inspect.png").is_file()
    for k, layer in enumerate(report["layers"], 1):
        assert layer["largest_singular_value"] == pytest.approx(np.linalg.norm(params[layer_names(k)[1]], 2))


def test_bad_input_is_one_error_line(trained_small_run, tmp_path, capsys, corpus_file):
    pytest.importorskip("matplotlib")
    run = str(trained_small_run)
    assert_usage_error(capsys, ["inspect", str(tmp_path / "none")], "checkpoint not found")
    assert_usage_error(capsys, ["inspect", str(corpus_file)], "not an rnn_gpu checkpoint")
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("QXZ" * 2000, encoding="utf-8")
    assert_usage_error(capsys, ["inspect", run, "--corpus", str(foreign)], "--corpus", "does not fit the model")
    assert_usage_error(capsys, ["inspect", run, "--corpus", str(tmp_path / "gone.txt")], "not found")
    assert_usage_error(capsys, ["inspect", run, "--seq", "0"], "--seq")
    assert_usage_error(capsys, ["inspect", run, "--seq", "100001"], "--seq")
    assert_usage_error(capsys, ["inspect", run, "--seq", "5000"], "--seq 5000 is longer than the validation part")
    assert_usage_error(capsys, ["inspect", run, "-o", str(tmp_path / "no" / "dir" / "x")], "--output",
                       "does not exist")
    assert not (trained_small_run / "inspect.json").exists()


def test_a_run_without_validation_or_corpus_record(corpus_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "noval"
    assert main(["train", str(corpus_file), "--out", str(out), *SMALL, "--steps", "3", "--val-fraction", "0"]) == 0
    assert "no held-out part" in one_error(capsys, ["inspect", str(out)], 2)
    ckpt = load_checkpoint(out)
    del ckpt.config["corpus"]
    save_checkpoint(tmp_path / "bare.npz", ckpt)
    assert "pass --corpus" in one_error(capsys, ["inspect", str(tmp_path / "bare.npz")], 2)
    ckpt.config.update(corpus=[str(corpus_file)], zoneout=0.1)
    save_checkpoint(tmp_path / "zoneout.npz", ckpt)
    assert "plain recurrence" in one_error(capsys, ["inspect", str(tmp_path / "zoneout.npz")], 2)
    ckpt.config.update(zoneout=0, seq="long")
    save_checkpoint(tmp_path / "damaged.npz", ckpt)
    assert "damaged configuration" in one_error(capsys, ["inspect", str(tmp_path / "damaged.npz")], 2)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"path": 3}, "path="), ({"path": ""}, "path="), ({"corpus": []}, "corpus="), ({"corpus": 5}, "corpus="),
    ({"seq": True}, "seq="), ({"seq": 1.5}, "seq="), ({"seq": 0}, "seq="), ({"output": ""}, "output="),
    ({"output": b"x"}, "output="),
])
def test_the_python_door_checks_its_arguments(trained_small_run, kwargs, fragment):
    args = {"path": trained_small_run, **kwargs}
    with pytest.raises(rnn_gpu.UsageError, match=fragment):
        rnn_gpu.inspect(**args)


# -- the trainer's records and plot ---------------------------------------------
def test_evaluation_records_carry_each_layers_sigma_max_and_saturation(corpus_file, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(corpus_file), "--out", str(out), *SMALL, "--layers", "2", "--steps", "12",
                 "--eval-every", "5", "--log-every", "2"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evaluated] == [5, 10, 12]
    assert all("W_sigma_max" not in r and "saturation" not in r for r in records if "val_loss" not in r)
    for r in evaluated:
        assert len(r["W_sigma_max"]) == 2 and all(s > 0 for s in r["W_sigma_max"])
        assert len(r["saturation"]) == 2 and all(0 <= s <= 1 for s in r["saturation"])
    ckpt = load_checkpoint(out)
    final = [np.linalg.norm(ckpt.params[w].astype(np.float64), 2) for w in ("W", "W2")]
    assert evaluated[-1]["W_sigma_max"] == pytest.approx(final, rel=1e-6)
    pytest.importorskip("matplotlib")
    assert main(["plot", str(out), "-o", str(tmp_path / "p.png")]) == 0


def test_plot_reads_old_records_and_refuses_junk_in_the_new_keys(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    old = [{"step": 10, "train_loss": 2.0, "lr": 0.002, "chars": 100, "chars_per_s": 5.0},
           {"step": 20, "train_loss": 1.9, "lr": 0.002, "chars": 200, "val_loss": 1.8}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    assert main(["plot", str(tmp_path)]) == 0 and (tmp_path / "loss.png").is_file()
    base = {"step": 1, "train_loss": 1.0}
    assert parse_record(json.dumps({**base, "W_sigma_max": [1.2, 0.9], "saturation": [0, 0.5]})) is not None
    for junk in ("x", [], [True], ["0.5"], [None], {"1": 0.5}, 0.5):
        assert parse_record(json.dumps({**base, "saturation": junk})) is None, junk
        assert parse_record(json.dumps({**base, "W_sigma_max": junk})) is None, junk
    (tmp_path / "metrics.jsonl").write_text(json.dumps({**base, "saturation": ["high"]}) + "\n")
    assert "not a metrics record" in one_error(capsys, ["plot", str(tmp_path)], 2)
