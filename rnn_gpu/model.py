"""The character-level vanilla RNN, batched over B streams of T steps.

    h_t = tanh(U x_t + W h_{t-1} + b)
    o_t = V h_t + c
    p_t = softmax(o_t)
    loss = mean over all T*B positions of -log p_t[target_t]

Only the H x H recurrence is sequential (`backend.recurrence_*`); every other
operation is one large array operation over all T*B positions.
"""
from __future__ import annotations

import numpy as np

PARAM_NAMES = ("U", "W", "V", "b", "c")


def init_params(vocab_size: int, hidden_size: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform in [-1/sqrt(n), 1/sqrt(n)] with n the fan-in; biases zero.

    Drawn on the host in float64 so every backend and dtype starts from the
    same numbers for the same seed.
    """
    rng = np.random.default_rng(seed)

    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)

    return {
        "U": uniform((hidden_size, vocab_size), vocab_size),
        "W": uniform((hidden_size, hidden_size), hidden_size),
        "V": uniform((vocab_size, hidden_size), hidden_size),
        "b": np.zeros(hidden_size),
        "c": np.zeros(vocab_size),
    }


class CharRNN:
    def __init__(self, vocab_size: int, hidden_size: int, backend, dtype="float32", seed: int = 0,
                 params: dict | None = None):
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.backend = backend
        self.dtype = np.dtype(dtype)
        if params is None:
            params = init_params(self.vocab_size, self.hidden_size, seed)
        self.params = {k: backend.asarray(params[k], dtype=self.dtype) for k in PARAM_NAMES}

    def zero_state(self, batch: int):
        return self.backend.xp.zeros((batch, self.hidden_size), dtype=self.dtype)

    # -- forward pieces shared by training and evaluation ------------------
    def _hidden_states(self, inputs, h0):
        U, W, b = self.params["U"], self.params["W"], self.params["b"]
        xp = self.backend.xp
        P = xp.take(xp.ascontiguousarray(U.T), inputs, axis=0)  # gather columns of U: (T, B, H), no one-hot GEMM
        P += b
        return self.backend.recurrence_forward(P, W, h0)

    def _logits(self, Hs):
        O = Hs.reshape(-1, self.hidden_size) @ self.params["V"].T
        O += self.params["c"]
        return O

    # -- public API ---------------------------------------------------------
    def prepare(self, inputs, targets, h0):
        be = self.backend
        inputs = be.asarray(inputs, dtype=np.int64)
        targets = be.asarray(targets, dtype=np.int64).reshape(-1)
        h0 = be.asarray(h0, dtype=self.dtype)
        return inputs, targets, h0

    def loss(self, inputs, targets, h0):
        """Mean NLL (nats) and the last hidden state, without gradients."""
        inputs, targets, h0 = self.prepare(inputs, targets, h0)
        Hs = self._hidden_states(inputs, h0)
        loss = self.backend.softmax_cross_entropy_(self._logits(Hs), targets)
        return float(loss), Hs[-1].copy()

    def loss_and_grads(self, inputs, targets, h0):
        """inputs, targets: (T, B) integers; h0: (B, H).

        Returns (loss, grads, h_last): the mean NLL in nats as a float, the
        gradients of that mean (same keys and shapes as `params`) and the
        last hidden state (B, H).
        """
        loss, grads, _, h_last = self.loss_and_grads_with_h0(inputs, targets, h0)
        return loss, grads, h_last

    def loss_and_grads_with_h0(self, inputs, targets, h0):
        """As `loss_and_grads`, plus the gradient for h0: (loss, grads, dh0, h_last)."""
        inputs, targets, h0 = self.prepare(inputs, targets, h0)
        be, H = self.backend, self.hidden_size
        W, V = self.params["W"], self.params["V"]
        Hs = self._hidden_states(inputs, h0)
        B = Hs.shape[1]
        Hf = Hs.reshape(-1, H)
        dO = self._logits(Hs)
        loss = be.softmax_cross_entropy_(dO, targets)  # dO: the gradient for the logits

        grads = {"V": dO.T @ Hf, "c": dO.sum(axis=0)}
        G = (dO @ V).reshape(Hs.shape)
        dA, dh0 = be.recurrence_backward(G, Hs, h0, W)
        dAf = dA.reshape(-1, H)
        dW = dA[0].T @ h0
        dW += dAf[B:].T @ Hf[:-B]  # step t pairs dA[t] with Hs[t-1]
        grads["W"] = dW
        grads["b"] = dAf.sum(axis=0)
        grads["U"] = be.scatter_add_rows(inputs.reshape(-1), dAf, self.vocab_size).T
        return float(loss), grads, dh0, Hs[-1].copy()
