"""What users would pick instead, as training steps to time side by side:

- the seed's algorithm: batch 1, float64, a Python loop per time step;
- PyTorch's nn.RNN (tanh) with a linear output layer, cross-entropy, Adagrad
  and value clipping, on CPU or CUDA (cuDNN), in one of the precisions of
  `TORCH_PRECISIONS`: float32 with TF32 off (the fair float32 baseline),
  float32 with TF32 allowed (cuDNN's own default), float16 and bfloat16
  (float16 the one where PyTorch may pick cuDNN's PERSIST_STATIC kernel:
  cudnn_algo.py). PyTorch is optional: the
  `bench` extra, never a core dependency.

Each `make_*` returns a `step()` that does one full training step (forward,
loss, BPTT, clipping, update) on fixed random data, plus a `sync()`.
"""
from __future__ import annotations

import numpy as np


def torch_unavailable_reason(device: str = "cpu") -> str | None:
    try:
        import torch
    except Exception as exc:
        return f"PyTorch is not installed ({type(exc).__name__}); pip install 'rnn_gpu[bench]'"
    if device == "cuda" and not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    return None


# precision name -> (parameter dtype, TF32 allowed)
TORCH_PRECISIONS = {"fp32": ("float32", False), "tf32": ("float32", True), "fp16": ("float16", False),
                    "bf16": ("bfloat16", False)}


def set_tf32(torch, allowed: bool) -> None:
    """Both of PyTorch's switches (they are global: set before every timed call)."""
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed


EMBEDDING_ABOVE = 256  # larger vocabularies feed nn.RNN through nn.Embedding(V, H), not one-hot vectors


def rnn_input_size(vocab: int, H: int) -> int:
    """The width of nn.RNN's inputs in make_torch_step: embeddings, or one-hot vectors."""
    return H if vocab > EMBEDDING_ABOVE else vocab


def make_torch_step(H: int, B: int, T: int, vocab: int, device: str = "cpu", seed: int = 0, layers: int = 1,
                    dropout: float = 0.0, precision: str = "fp32"):
    """The recipe of `rnn-gpu bench`: with `dropout`, nn.RNN's own between
    stacked layers and the same rate on the output layer's input, as ours.
    Above EMBEDDING_ABOVE symbols the inputs are nn.Embedding(V, H) rows into nn.RNN(H, H) (one more
    H x H input matrix than ours), since a one-hot GEMM there would time the baseline's waste."""
    import torch

    dtype_name, tf32 = TORCH_PRECISIONS[precision]
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(seed)
    dev = torch.device(device)
    embed = torch.nn.Embedding(vocab, H).to(dev, dtype) if vocab > EMBEDDING_ABOVE else None
    rnn = torch.nn.RNN(rnn_input_size(vocab, H), H, num_layers=layers, nonlinearity="tanh",
                       dropout=dropout if layers > 1 else 0.0)
    rnn = rnn.to(dev, dtype)
    head = torch.nn.Linear(H, vocab).to(dev, dtype)
    params = list(rnn.parameters()) + list(head.parameters()) + (list(embed.parameters()) if embed else [])
    opt = torch.optim.Adagrad(params, lr=0.1)
    rng = np.random.default_rng(seed)
    data = torch.as_tensor(rng.integers(0, vocab, size=(T + 1, B)), device=dev)
    one_hot = None if embed else torch.nn.functional.one_hot(data[:-1], vocab).to(dtype)  # nn.RNN takes vectors
    targets = data[1:].reshape(-1)
    h = torch.zeros(layers, B, H, device=dev, dtype=dtype)

    def step():
        nonlocal h
        set_tf32(torch, tf32)
        opt.zero_grad(set_to_none=True)
        out, h_last = rnn(embed(data[:-1]) if embed else one_hot, h)
        out = torch.nn.functional.dropout(out, dropout, training=True) if dropout else out
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, vocab).float(), targets)
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        h = h_last.detach()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return step, sync


def time_torch_recurrence(H: int, B: int, T: int, device: str = "cpu", precision: str = "fp32",
                          repeats: int = 5, seed: int = 0) -> dict:
    """µs per time step of nn.RNN(H, H) alone, forward and backward, so that
    kernel is compared with kernel (its input GEMM for all steps included:
    cuDNN always does it)."""
    import torch

    from .cudnn_algo import torch_cudnn_algo
    from .timing import median_seconds

    dtype_name, tf32 = TORCH_PRECISIONS[precision]
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(seed)
    dev = torch.device(device)
    rnn = torch.nn.RNN(H, H, nonlinearity="tanh").to(dev, dtype)
    x = torch.rand(T, B, H, device=dev, dtype=dtype) * 2 - 1
    h0 = torch.rand(1, B, H, device=dev, dtype=dtype) * 2 - 1
    grad = torch.rand(T, B, H, device=dev, dtype=dtype) * 2 - 1

    class Sync:
        @staticmethod
        def synchronize():
            if dev.type == "cuda":
                torch.cuda.synchronize()

    def forward():
        set_tf32(torch, tf32)
        with torch.no_grad():
            rnn(x, h0)

    def backward():
        set_tf32(torch, tf32)
        out, _ = rnn(x, h0)
        out.backward(grad)

    fwd = median_seconds(forward, Sync, repeats)
    both = median_seconds(backward, Sync, repeats)
    return {"fwd_us_per_step": fwd / T * 1e6, "bwd_us_per_step": max(both - fwd, 0.0) / T * 1e6,
            "cudnn_algo": torch_cudnn_algo(torch, dev.type, dtype_name, H, B, T)}


def make_seed_step(H: int, T: int, vocab: int, seed: int = 0):
    """The seed's min-char-rnn step: one stream, one-hot inputs, float64,
    Python loops over time forward and backward, Adagrad, clip to [-5, 5]."""
    rng = np.random.default_rng(seed)
    U = rng.uniform(-1, 1, (H, vocab)) / np.sqrt(vocab)
    W = rng.uniform(-1, 1, (H, H)) / np.sqrt(H)
    V = rng.uniform(-1, 1, (vocab, H)) / np.sqrt(H)
    b, c = np.zeros(H), np.zeros(vocab)
    params = [U, W, V, b, c]
    memory = [np.zeros_like(p) for p in params]
    inputs = rng.integers(0, vocab, T + 1)
    state = {"h": np.zeros(H)}

    def step():
        xs, hs, ps = {}, {-1: state["h"]}, {}
        loss = 0.0
        for t in range(T):
            xs[t] = np.zeros(vocab)
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(U @ xs[t] + W @ hs[t - 1] + b)
            o = V @ hs[t] + c
            ps[t] = np.exp(o - o.max())
            ps[t] /= ps[t].sum()
            loss -= np.log(ps[t][inputs[t + 1]])
        grads = [np.zeros_like(p) for p in params]
        dU, dW, dV, db, dc = grads
        dh_next = np.zeros(H)
        for t in reversed(range(T)):
            do = ps[t].copy()
            do[inputs[t + 1]] -= 1
            dV += np.outer(do, hs[t])
            dc += do
            da = (1 - hs[t] ** 2) * (V.T @ do + dh_next)
            db += da
            dU += np.outer(da, xs[t])
            dW += np.outer(da, hs[t - 1])
            dh_next = W.T @ da
        for p, g, m in zip(params, grads, memory, strict=True):
            np.clip(g, -5, 5, out=g)
            m += g * g
            p -= 0.1 * g / np.sqrt(m + 1e-8)
        state["h"] = hs[T - 1]
        return loss

    return step, lambda: None
