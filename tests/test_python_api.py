"""The Python API (rnn_gpu.train, load, sample, a model's sample): it trains,
loads and samples, and refuses bad settings and sampling options with a
UsageError before it makes anything."""
import pytest


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

