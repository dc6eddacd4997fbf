"""Exports (rnn_gpu/export, docs/export.md): PyTorch's and ONNX Runtime's
forward pass of an exported model equals TextRNN's, greedy sampling gives the
same text, a safetensors round trip is bit for bit, and damaged or foreign
files, bad outputs and missing libraries are errors that say what is wrong.
Fresh random models and inputs each run (RNN_GPU_TEST_SEED replays one);
tests of a library that is not installed are skipped."""
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from rnn_gpu import TextRNN, get_backend
from rnn_gpu.checkpoint import Checkpoint, save_checkpoint
from rnn_gpu.data import words
from rnn_gpu.data.vocab import Vocab
from rnn_gpu.errors import CheckpointError, EnvironmentFailure, UsageError
from rnn_gpu.export import export, is_safetensors, load_safetensors, read_model
from rnn_gpu.sample import sample, step

DOC = Path(__file__).resolve().parents[1] / "docs" / "export.md"
# A small text of every kind of token (words, spaces, punctuation, a newline, non-ASCII letters).
TEXT = ("the cat sat on the mat. the dog ran to the red hat, and the cat ran.\n"
        "a dog sat on a mat; the red cat and the dog ran to a hat. Über café: naïve!\n") * 4
KINDS = ("chars", "bytes", "words")
HIDDEN = 8
TOL = 1e-5


def make_vocab(kind: str) -> Vocab:
    return {"chars": lambda: Vocab.from_text(TEXT), "bytes": Vocab.bytes256,
            "words": lambda: Vocab.from_words(TEXT, size=12)}[kind]()


def random_model(rng, vocab, layers, dtype="float32"):
    """A fresh model with nonzero biases and spread logits (input and output
    weights x3; the recurrent weights as drawn, so the state forgets rounding)."""
    model = TextRNN(len(vocab), HIDDEN, get_backend("numpy"), dtype=dtype, seed=int(rng.integers(2**31)),
                    layers=layers)
    for name, view in model.params.items():
        if name[0] in "bc":
            view[...] = rng.normal(0, 0.5, view.shape)
        elif name in ("U", "V"):
            view *= 3
    model.vocab = vocab
    return model


def checkpoint_of(model) -> Checkpoint:
    be = model.backend
    config = {"hidden": model.hidden_size, "layers": model.layers, "dtype": model.dtype.name, "note": "é ⁇"}
    return Checkpoint(params={k: be.to_host(v).copy() for k, v in model.params.items()}, vocab=model.vocab,
                      config=config)


def reference(model, ids, h0):
    """TextRNN's logits (T, B, V) and last state (L, B, H)."""
    layers, top, _ = model._forward(np.asarray(ids, dtype=np.int64), h0.astype(model.dtype), None)
    T, B = ids.shape
    return model._logits(top).reshape(T, B, -1), np.stack([Hs[-1] for _, Hs in layers])


def shapes(rng):
    """(T, B) pairs: one step of one stream, one step of several, and random ones."""
    return [(1, 1), (1, int(rng.integers(2, 5))), (int(rng.integers(2, 9)), int(rng.integers(1, 5)))]


def greedy_margin(model, prime: str, length: int) -> float:
    """The smallest gap between the two largest logits along the greedy path
    of `sample(..., temperature=0)`: above the tolerance twice over, every
    implementation within it chooses the same symbols."""
    h = np.zeros((model.layers, 1, model.hidden_size), dtype=model.dtype)
    for symbol in model.vocab.encode(prime):
        step(model, np.array([symbol]), h)
    margins = []
    for _ in range(length):
        logits = (h[-1] @ model.params["V"].T + model.params["c"])[0]
        top = np.sort(logits)[-2:]
        margins.append(top[1] - top[0])
        step(model, np.array([int(np.argmax(logits))]), h)
    return float(min(margins))


def model_for_greedy(rng, vocab, layers, prime, length):
    """A random model whose greedy path has no near-tie (drawn again until so)."""
    for _ in range(50):
        model = random_model(rng, vocab, layers)
        if greedy_margin(model, prime, length) > 10 * TOL:
            return model
    pytest.fail("no random model without a near-tie in 50 draws")


def doc_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"one python block with {marker!r} in {DOC.name}"
    return found[0]


def prime_and_length(block: str) -> tuple[str, int]:
    return re.search(r'prime = "(.*)"', block).group(1), int(re.search(r"range\((\d+)\)", block).group(1))


# -- PyTorch -----------------------------------------------------------------
def torch_modules(torch, path):
    f = torch.load(path, weights_only=True)
    V, H, L = f["vocab_size"], f["hidden_size"], f["layers"]
    net = torch.nn.ModuleDict({"embedding": torch.nn.Embedding(V, H),
                               "rnn": torch.nn.RNN(input_size=H, hidden_size=H, num_layers=L, nonlinearity="tanh"),
                               "linear": torch.nn.Linear(H, V)})
    net.load_state_dict(f["state_dict"])
    return f, net


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_torch_forward_equals_textrnn(kind, layers, rng, tmp_path):
    torch = pytest.importorskip("torch")
    model = random_model(rng, make_vocab(kind), layers)
    path = export(checkpoint_of(model), "torch", tmp_path / "model.pt")
    f, net = torch_modules(torch, path)
    assert f["format"] == "rnn_gpu.torch/1"
    assert f["vocab"]["kind"] == kind and tuple(f["vocab"]["symbols"]) == model.vocab.symbols
    assert f["vocab"].get("tokenizer") == (words.TOKENIZER if kind == "words" else None)
    assert json.loads(f["config"])["layers"] == layers
    for T, B in shapes(rng):
        ids = rng.integers(0, len(model.vocab), (T, B))
        h0 = rng.uniform(-0.9, 0.9, (layers, B, HIDDEN)).astype(np.float32)
        logits, h = reference(model, ids, h0)
        with torch.no_grad():
            y, h_torch = net["rnn"](net["embedding"](torch.from_numpy(ids)), torch.from_numpy(h0))
            logits_torch = net["linear"](y)
        np.testing.assert_allclose(logits_torch.numpy(), logits, rtol=0, atol=TOL)
        np.testing.assert_allclose(h_torch.numpy(), h, rtol=0, atol=TOL)


# -- ONNX ----------------------------------------------------------------------
def onnx_session(path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)] and proto.ir_version == 8
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_onnx_forward_equals_textrnn(kind, layers, rng, tmp_path):
    pytest.importorskip("onnx")
    model = random_model(rng, make_vocab(kind), layers)
    session = onnx_session(export(checkpoint_of(model), "onnx", tmp_path / "model.onnx"))
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("ids", ["T", "B"]), ("h0", [layers, "B", HIDDEN])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("logits", ["T", "B", len(model.vocab)]),
                                                                ("h", [layers, "B", HIDDEN])]
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["format"] == "rnn_gpu.onnx/1" and meta["vocab_kind"] == kind
    assert tuple(json.loads(meta["vocab_symbols"])) == model.vocab.symbols
    assert json.loads(meta["config"]) == checkpoint_of(model).config
    assert (meta["layers"], meta["hidden_size"], meta["vocab_size"]) == (str(layers), str(HIDDEN),
                                                                         str(len(model.vocab)))
    for T, B in shapes(rng):
        ids = rng.integers(0, len(model.vocab), (T, B))
        h0 = rng.uniform(-0.9, 0.9, (layers, B, HIDDEN)).astype(np.float32)
        logits, h = reference(model, ids, h0)
        logits_onnx, h_onnx = session.run(["logits", "h"], {"ids": ids.astype(np.int64), "h0": h0})
        np.testing.assert_allclose(logits_onnx, logits, rtol=0, atol=TOL)
        np.testing.assert_allclose(h_onnx, h, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt, layers", [("torch", 1), ("torch", 3), ("onnx", 1), ("onnx", 2)])
def test_the_docs_snippets_sample_as_rnn_gpu_does(kind, fmt, layers, rng, tmp_path, monkeypatch, capsys):
    """docs/export.md's greedy loop in PyTorch alone and in ONNX Runtime alone."""
    for library in {"torch": ("torch",), "onnx": ("onnx", "onnxruntime")}[fmt]:
        pytest.importorskip(library)
    block = doc_block({"torch": "import torch", "onnx": "import onnxruntime"}[fmt])
    prime, length = prime_and_length(block)
    model = model_for_greedy(rng, make_vocab(kind), layers, prime, length)
    export(checkpoint_of(model), fmt, tmp_path / f"model.{'pt' if fmt == 'torch' else fmt}")
    expected = sample(model, length=length, temperature=0, prime=prime)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(DOC), "exec"), {})  # noqa: S102
    assert capsys.readouterr().out == expected + "\n"


def test_the_snippets_sample_as_the_api_documents_it():
    for marker in ("import torch", "import onnxruntime"):
        prime, length = prime_and_length(doc_block(marker))
        assert f'sample(model, vocab, length={length}, temperature=0, prime="{prime}")' in DOC.read_text()


def test_a_float64_model_exports_as_float32(rng, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    model = random_model(rng, make_vocab("chars"), 2, dtype="float64")
    ckpt = checkpoint_of(model)
    f, net = torch_modules(torch, export(ckpt, "torch", tmp_path / "model.pt"))
    assert all(v.dtype == torch.float32 for v in f["state_dict"].values())
    session = onnx_session(export(ckpt, "onnx", tmp_path / "model.onnx"))
    ids = rng.integers(0, len(model.vocab), (5, 3))
    h0 = rng.uniform(-0.9, 0.9, (2, 3, HIDDEN))
    logits, h = reference(model, ids, h0)
    with torch.no_grad():
        y, h_torch = net["rnn"](net["embedding"](torch.from_numpy(ids)), torch.from_numpy(h0).float())
        np.testing.assert_allclose(net["linear"](y).numpy(), logits, rtol=0, atol=TOL)
    np.testing.assert_allclose(h_torch.numpy(), h, rtol=0, atol=TOL)
    logits_onnx, h_onnx = session.run(None, {"ids": ids, "h0": h0.astype(np.float32)})
    np.testing.assert_allclose(logits_onnx, logits, rtol=0, atol=TOL)
    np.testing.assert_allclose(h_onnx, h, rtol=0, atol=TOL)


# -- safetensors -----------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,dtype", [(1, "float32"), (2, "float64"), (3, "float32")])
def test_safetensors_round_trip_is_bit_for_bit(kind, layers, dtype, rng, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = random_model(rng, make_vocab(kind), layers, dtype=dtype)
    path = export(checkpoint_of(model), "safetensors", tmp_path / "model.safetensors")
    stored = st.load_file(str(path))
    assert {k: (v.shape, v.dtype) for k, v in stored.items()} == {
        k: (v.shape, np.dtype(dtype)) for k, v in model.params.items()}
    assert is_safetensors(path)
    ckpt = load_safetensors(path)
    assert ckpt.vocab == model.vocab and ckpt.config == checkpoint_of(model).config
    assert ckpt.step == 0 and ckpt.h is None and ckpt.optimizer_state == {}
    again = TextRNN(len(ckpt.vocab), ckpt.params["W"].shape[0], get_backend("numpy"), dtype=ckpt.params["W"].dtype,
                    params=ckpt.params)
    again.vocab = ckpt.vocab
    assert again.layers == layers and again.dtype == model.dtype
    assert all(np.array_equal(again.params[k], model.params[k]) for k in model.params)
    ids = rng.integers(0, len(model.vocab), (4, 3))
    h0 = rng.uniform(-0.9, 0.9, (layers, 3, HIDDEN))
    for a, b in zip(reference(again, ids, h0), reference(model, ids, h0), strict=True):
        assert np.array_equal(a, b)
    prime = "the cat "
    assert sample(again, length=40, temperature=0, prime=prime) == sample(model, length=40, temperature=0,
                                                                           prime=prime)


def safetensors_parts(rng, tmp_path, kind="chars"):
    """A good export's tensors and metadata, to spoil one part of."""
    st = pytest.importorskip("safetensors.numpy")
    safetensors = pytest.importorskip("safetensors")
    path = export(checkpoint_of(random_model(rng, make_vocab(kind), 2)), "safetensors", tmp_path / "good.safetensors")
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    return st, st.load_file(str(path)), meta, path


def spoil_metadata(key, value):
    def spoil(tensors, meta):
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    return spoil


def spoil_tensor(name, change):
    def spoil(tensors, meta):
        tensors[name] = change(tensors[name])
    return spoil


def with_nan(a):
    a = a.copy()
    a.flat[a.size // 2] = np.nan
    return a


SPOILED = {
    "no format tag": (spoil_metadata("format", None), "not an rnn_gpu model"),
    "another format's tag": (spoil_metadata("format", "rnn_gpu.onnx/1"), "not an rnn_gpu model"),
    "no config": (spoil_metadata("config", None), "missing config"),
    "no vocabulary": (spoil_metadata("vocab_symbols", None), "missing vocab_symbols"),
    "config not JSON": (spoil_metadata("config", "{hidden"), "damaged metadata"),
    "config not an object": (spoil_metadata("config", "[1, 2]"), "damaged configuration"),
    "symbols unsorted": (spoil_metadata("vocab_symbols", "[98, 97]"), "damaged vocabulary"),
    "symbols as text": (spoil_metadata("vocab_symbols", '["a", "b"]'), "damaged vocabulary"),
    "unknown kind": (spoil_metadata("vocab_kind", "glyphs"), "damaged vocabulary"),
    "size disagrees": (spoil_metadata("hidden_size", "9"), "its metadata says"),
    "wrong shape": (spoil_tensor("W2", lambda a: a[:, :-1].copy()), "parameter W2 has shape"),
    "wrong vocabulary size": (spoil_tensor("V", lambda a: a[:-1].copy()), "parameter V has shape"),
    "NaN weight": (spoil_tensor("U2", with_nan), "parameter U2"),
    "integer weight": (spoil_tensor("c", lambda a: a.astype(np.int32)), "parameter c"),
    "missing parameter": (lambda tensors, meta: tensors.pop("c"), "no c"),
    "foreign tensor": (lambda tensors, meta: tensors.update(extra=np.zeros(3, np.float32)), "unexpected extra"),
}


@pytest.mark.parametrize("case", SPOILED)
def test_a_spoiled_safetensors_file_is_named(case, rng, tmp_path):
    st, tensors, meta, _ = safetensors_parts(rng, tmp_path)
    spoil, message = SPOILED[case]
    spoil(tensors, meta)
    path = tmp_path / "spoiled.safetensors"
    st.save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=re.escape(message)) as raised:
        load_safetensors(path)
    assert str(path) in str(raised.value)


def test_a_word_vocabulary_of_another_tokenizer_is_refused(rng, tmp_path):
    st, tensors, meta, _ = safetensors_parts(rng, tmp_path, kind="words")
    for tokenizer in ("rnn_gpu.words/0", None):
        meta = {k: v for k, v in meta.items() if k != "vocab_tokenizer"}
        if tokenizer:
            meta["vocab_tokenizer"] = tokenizer
        path = tmp_path / "other.safetensors"
        st.save_file(tensors, str(path), metadata=meta)
        with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}.*tokenizer {tokenizer}"):
            load_safetensors(path)


def test_truncated_and_foreign_files_are_named(rng, tmp_path):
    st, tensors, meta, good = safetensors_parts(rng, tmp_path)
    data = good.read_bytes()
    path = tmp_path / "bad.safetensors"
    for size in (0, 5, 8, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            load_safetensors(path)
    path.write_text("a text file, not a model\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_safetensors(path)
    st.save_file(tensors, str(path))  # no metadata at all: someone else's file
    with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}: not an rnn_gpu model"):
        load_safetensors(path)
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)  # opening it would wait for a writer
    for missing in (tmp_path / "absent.safetensors", tmp_path, fifo):
        with pytest.raises(CheckpointError, match=re.escape(str(missing))):
            load_safetensors(missing)


# -- sources, outputs, libraries --------------------------------------------------
def test_a_run_directory_a_checkpoint_and_an_export_are_sources(rng, tmp_path):
    pytest.importorskip("safetensors")
    model = random_model(rng, make_vocab("words"), 2)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.npz", checkpoint_of(model))  # no checkpoint.npz: the best one
    first = export(run, "safetensors", tmp_path / "a.safetensors")
    second = export(str(first), "safetensors", tmp_path / "b.st")  # a safetensors export, sniffed
    third = export(run / "best.npz", "safetensors", tmp_path / "c.safetensors")
    for path in (run, first, second, third):
        ckpt = read_model(path)
        assert ckpt.vocab == model.vocab and ckpt.config == checkpoint_of(model).config
        assert all(np.array_equal(ckpt.params[k], model.params[k]) for k in model.params)


def test_bad_outputs_and_sources_are_usage_errors(rng, tmp_path):
    pytest.importorskip("safetensors.numpy")
    ckpt = checkpoint_of(random_model(rng, make_vocab("chars"), 1))
    (tmp_path / "file").write_text("x")
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.npz", ckpt)
    bad = {tmp_path: "is a directory", tmp_path / "missing" / "m.pt": "does not exist",
           tmp_path / "file" / "m.pt": "is not a directory", run / "checkpoint.npz": "being exported"}
    for output, message in bad.items():
        with pytest.raises(UsageError, match=message):
            export(run, "safetensors", output)
    with pytest.raises(UsageError, match="formats: torch, onnx, safetensors"):
        export(ckpt, "tflite", tmp_path / "m")
    with pytest.raises(UsageError, match="not int"):
        export(3, "safetensors", tmp_path / "m")
    with pytest.raises(CheckpointError, match="not found"):
        export(tmp_path / "nowhere", "safetensors", tmp_path / "m")
    spoiled = Checkpoint(params={**ckpt.params, "W": ckpt.params["W"][:, :2]}, vocab=ckpt.vocab, config={})
    with pytest.raises(CheckpointError, match="parameter W has shape"):
        export(spoiled, "safetensors", tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "run"]


def test_an_interrupted_export_leaves_the_old_file_whole(rng, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    ckpt = checkpoint_of(random_model(rng, make_vocab("bytes"), 1))
    output = tmp_path / "model.pt"
    output.write_bytes(b"the old export")

    def full_disk(obj, f):
        f.write(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(EnvironmentFailure, match="No space left"):
        export(ckpt, "torch", output)
    assert output.read_bytes() == b"the old export" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    monkeypatch.undo()
    export(ckpt, "torch", output)
    assert torch.load(output, weights_only=True)["vocab"]["kind"] == "bytes"


@pytest.mark.parametrize("format,modules,extra", [("torch", ["torch"], "torch"), ("onnx", ["onnx"], "export"),
                                                  ("safetensors", ["safetensors", "safetensors.numpy"], "export")])
def test_a_missing_library_names_its_extra(format, modules, extra, rng, tmp_path, monkeypatch):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import` of it fails as if not installed
    ckpt = checkpoint_of(random_model(rng, make_vocab("chars"), 1))
    message = f"exporting to {format} needs the {modules[0]} package: pip install 'rnn_gpu[{extra}]'"
    with pytest.raises(UsageError, match=re.escape(message)):
        export(ckpt, format, tmp_path / "model")
    assert not list(tmp_path.iterdir())
    if format == "safetensors":
        (tmp_path / "model.safetensors").write_bytes(b"\x02" + bytes(7) + b"{}")
        with pytest.raises(UsageError, match=re.escape("pip install 'rnn_gpu[export]'")):
            load_safetensors(tmp_path / "model.safetensors")
