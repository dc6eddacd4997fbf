"""What users would pick instead, as training steps to time side by side:

- the seed's algorithm: batch 1, float64, a Python loop per time step;
- PyTorch's nn.RNN (tanh) with a linear output layer, cross-entropy, Adagrad
  and value clipping, on CPU or CUDA (cuDNN). PyTorch is optional: the
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


def make_torch_step(H: int, B: int, T: int, vocab: int, device: str = "cpu", seed: int = 0, layers: int = 1,
                    dropout: float = 0.0):
    """nn.RNN's own dropout: between stacked layers (not before the output layer, as ours also does)."""
    import torch

    torch.manual_seed(seed)
    dev = torch.device(device)
    rnn = torch.nn.RNN(vocab, H, num_layers=layers, nonlinearity="tanh", dropout=dropout if layers > 1 else 0.0)
    rnn = rnn.to(dev)
    head = torch.nn.Linear(H, vocab).to(dev)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adagrad(params, lr=0.1)
    rng = np.random.default_rng(seed)
    data = torch.as_tensor(rng.integers(0, vocab, size=(T + 1, B)), device=dev)
    inputs = torch.nn.functional.one_hot(data[:-1], vocab).float()  # nn.RNN takes vectors, not indices
    targets = data[1:].reshape(-1)
    h = torch.zeros(layers, B, H, device=dev)

    def step():
        nonlocal h
        opt.zero_grad(set_to_none=True)
        out, h_last = rnn(inputs, h)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, vocab), targets)
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        h = h_last.detach()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return step, sync


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
