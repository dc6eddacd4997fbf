"""`train --init-from FILE`: a model travels back. A PyTorch export, a
state dict of the same modules (embedded or one-hot inputs, both biases), a
safetensors export or a checkpoint gives a new run its starting weights,
exactly; anything else is one error naming what differs."""
import numpy as np
import pytest

import rnn_gpu
from rnn_gpu.cli import main
from rnn_gpu.data.corpus import load_corpus
from rnn_gpu.parallel import SingleCommunicator
from rnn_gpu.training import TrainConfig
from rnn_gpu.training.setup import make_trainer

SIZES = {"hidden": 8, "layers": 2, "batch": 2, "seq": 8, "backend": "numpy"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    (root / "c.txt").write_text("a rose is a rose is a rose\n" * 80, encoding="utf-8")
    rnn_gpu.train(str(root / "c.txt"), str(root / "run"), steps=3, **SIZES)
    return root


def first_params(corpus, tmp_path, **settings):
    cfg = TrainConfig(steps=1, **{**SIZES, **settings})
    cfg.validate()
    trainer = make_trainer(cfg, str(corpus), tmp_path / "new", False, SingleCommunicator())
    return {k: trainer.backend.to_host(v) for k, v in trainer.model.params.items()}


@pytest.mark.parametrize("fmt", ["torch", "safetensors", "checkpoint"])
def test_a_new_run_starts_from_the_files_weights_exactly(source, tmp_path, fmt):
    if fmt == "torch":
        pytest.importorskip("torch")
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    path = source / "run" if fmt == "checkpoint" else rnn_gpu.export(source / "run", fmt, tmp_path / f"m.{fmt}")
    expected = rnn_gpu.load(source / "run")[0].params
    got = first_params(source / "c.txt", tmp_path, init_from=str(path))
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    final = rnn_gpu.train(source / "c.txt", tmp_path / "trained", steps=2, init_from=path, **SIZES)
    assert final["step"] == 2


def torch_modules(V, H, L, one_hot, seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    modules = torch.nn.ModuleDict({"rnn": torch.nn.RNN(V if one_hot else H, H, num_layers=L, nonlinearity="tanh"),
                                   "linear": torch.nn.Linear(H, V)})
    if not one_hot:
        modules["embedding"] = torch.nn.Embedding(V, H)
    return torch, modules


@pytest.mark.parametrize("one_hot", [False, True])
def test_a_state_dict_of_standard_modules_gives_the_same_logits(source, tmp_path, rng, one_hot):
    """Random PyTorch weights (input weights not the identity, both biases
    nonzero): rnn_gpu's model from them predicts what PyTorch does."""
    V = len(load_corpus(str(source / "c.txt"), "chars").vocab)
    torch, modules = torch_modules(V, 8, 2, one_hot, int(rng.integers(1000)))
    torch.save(modules.state_dict(), tmp_path / "state.pt")
    params = first_params(source / "c.txt", tmp_path, init_from=str(tmp_path / "state.pt"))
    ids = rng.integers(0, V, size=(7, 3))
    with torch.no_grad():
        x = torch.nn.functional.one_hot(torch.from_numpy(ids), V).float() if one_hot else \
            modules["embedding"](torch.from_numpy(ids))
        expected = modules["linear"](modules["rnn"](x)[0]).numpy()
    model = rnn_gpu.TextRNN(V, 8, "numpy", layers=2, params=params)
    layers, top, _ = model._forward(model.backend.asarray(ids), model.zero_state(3).reshape(2, 3, 8), None)
    np.testing.assert_allclose(model._logits(top).reshape(expected.shape), expected, atol=1e-5)


def test_what_does_not_fit_is_one_error_naming_it(source, tmp_path, capsys):
    pytest.importorskip("torch")
    path = rnn_gpu.export(source / "run", "torch", tmp_path / "m.pt")
    corpus = source / "c.txt"
    base = ["train", str(corpus), "--out", str(tmp_path / "r"), "--steps", "1", "--backend", "numpy", "--batch", "2",
            "--seq", "8", "--quiet"]
    cases = [(["--init-from", str(path), "--hidden", "16", "--layers", "2"], "pass --hidden 8 --layers 2"),
             (["--init-from", str(tmp_path / "none.pt")], "no such file"),
             (["--init-from", str(corpus), "--hidden", "8", "--layers", "2"], "not a PyTorch file"),
             (["--init-from", ""], "must not be empty")]
    other = tmp_path / "other.txt"
    other.write_text("zyxwvut " * 300, encoding="utf-8")
    cases.append(([f"--init-from={path}", "--hidden", "8", "--layers", "2", "--val-fraction", "0"],
                  "another vocabulary"))
    for extra, fragment in cases:
        argv = base if "another vocabulary" not in fragment else [base[0], str(other), *base[2:]]
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    with pytest.raises(rnn_gpu.UsageError, match="pass hidden=8 layers=2"):
        rnn_gpu.train(corpus, tmp_path / "api", steps=1, init_from=path, hidden=4, layers=2, batch=2, seq=8,
                      backend="numpy")
