"""What a model's recurrence does to gradients, measured in plain NumPy.

    h1_t = tanh(U x_t + W h1_{t-1} + b),   hk_t = tanh(Uk h(k-1)_t + Wk hk_{t-1} + bk)
    o_T  = V hL_T + c,                      L_T = -log softmax(o_T)[target]

`last_step_gradients` backpropagates the loss of a window's last step alone
through the window, in float64, one time step at a time, and returns
dL_T/dh_t for every layer and every t: the picture of backpropagation
through time, measured instead of drawn. Nothing here is fast or fused; it
is meant to be obviously right (tests/test_inspect.py holds it to central
finite differences). `saturation` and `largest_singular_value` are the two
cheap numbers the trainer logs at every evaluation too (it counts the
saturated units where its states are, on its backend, with SATURATED).

Imports nothing of the package but the parameters' names (layout)."""
from __future__ import annotations

import numpy as np

from ..layout import layer_names, layers_in

SATURATED = 0.99  # |h| above this: tanh' = 1 - h^2 < 0.02, a unit that passes almost no gradient
EXACT_SVD_MAX = 2048  # W up to this size: its 2-norm by SVD; larger ones by power iteration
POWER_ITERATIONS = 30


def host_params(params: dict) -> dict[str, np.ndarray]:
    """The parameters as float64 host arrays (U as (H, V), as a checkpoint holds it)."""
    return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def forward(params: dict, inputs: np.ndarray, h0: np.ndarray, replace=None) -> list[np.ndarray]:
    """Each layer's states (T, B, H) for `inputs` (T, B) of ids from `h0`
    (L, B, H). `replace=(k, t, h)`: layer k's state at step t is set to h
    (B, H) after it is computed, as if the recurrence had made it (for
    finite differences)."""
    states, X = [], None
    for k in range(1, layers_in(params) + 1):
        U, W, b = (params[n] for n in layer_names(k))
        P = (U.T[inputs] if k == 1 else X @ U.T) + b  # (T, B, H)
        Hs, h = np.empty_like(P), h0[k - 1]
        for t in range(P.shape[0]):
            h = np.tanh(P[t] + h @ W.T)
            if replace is not None and replace[0] == k and replace[1] == t:
                h = np.asarray(replace[2], dtype=np.float64)
            Hs[t] = h
        states.append(Hs)
        X = Hs
    return states


def last_step_loss(params: dict, top_last: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each stream's -log p(target) at the last step, from the top layer's last state (B, H)."""
    o = top_last @ params["V"].T + params["c"]
    o = o - o.max(axis=1, keepdims=True)
    return np.log(np.exp(o).sum(axis=1)) - o[np.arange(len(targets)), targets]


def last_step_gradients(params: dict, inputs: np.ndarray, targets: np.ndarray, h0: np.ndarray):
    """(losses, grads, states): each stream's loss at the last step T (B,),
    and per layer k (counting from 0) grads[k][t] = dL_T/dh_t of that layer
    (T, B, H), stream b's row the gradient of stream b's loss; states as
    `forward` gives them. `targets`: the symbol after the last input, (B,)."""
    params = host_params(params)
    inputs, targets = np.asarray(inputs), np.asarray(targets).reshape(-1)
    h0 = np.asarray(h0, dtype=np.float64)
    states = forward(params, inputs, h0)
    top = states[-1]
    T, B, H = top.shape
    o = top[-1] @ params["V"].T + params["c"]
    p = np.exp(o - o.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    losses = -np.log(np.maximum(p[np.arange(B), targets], np.finfo(np.float64).tiny))
    p[np.arange(B), targets] -= 1  # dL/do, row by row
    G = np.zeros((T, B, H))  # the gradient arriving at each state from outside its layer
    G[-1] = p @ params["V"]
    grads = [None] * len(states)
    for k in range(len(states), 0, -1):
        U, W, _ = (params[n] for n in layer_names(k))
        Hs = states[k - 1]
        dH, dA = np.empty_like(Hs), np.empty_like(Hs)  # dL/dh_t and dL/d(pre-activation)_t
        below = np.zeros((B, H))  # dL/dh_t through h_{t+1} = tanh(... + W h_t): dA_{t+1} @ W
        for t in range(T - 1, -1, -1):
            dH[t] = G[t] + below
            dA[t] = (1 - Hs[t] ** 2) * dH[t]
            below = dA[t] @ W
        grads[k - 1] = dH
        if k > 1:
            G = dA @ U  # to layer k-1's states, through P = X @ Uk.T
    return losses, grads, states


def norms_by_distance(grad: np.ndarray) -> np.ndarray:
    """||dL_T/dh_t|| of each stream (T, B) ordered by the distance T - t: row d is t = T - d."""
    return np.linalg.norm(grad, axis=-1)[::-1]


def saturation(states) -> float:
    """The fraction of a layer's units with |h| > SATURATED, over all its states given."""
    states = np.asarray(states)
    return float(np.count_nonzero(np.abs(states) > SATURATED) / max(states.size, 1))


def largest_singular_value(W) -> float:
    """||W||_2, the largest singular value: by SVD up to EXACT_SVD_MAX units
    (float64), above by POWER_ITERATIONS steps of power iteration on W.T W
    (a lower bound that converges from below)."""
    W = np.asarray(W)
    if max(W.shape) <= EXACT_SVD_MAX:
        return float(np.linalg.norm(W.astype(np.float64, copy=False), 2))
    v = np.full(W.shape[1], 1 / np.sqrt(W.shape[1]), dtype=W.dtype)
    sigma = 0.0
    for _ in range(POWER_ITERATIONS):
        u = W @ v
        sigma = float(np.linalg.norm(u))
        if sigma == 0:
            return 0.0
        v = W.T @ (u / sigma)
        v /= np.linalg.norm(v)
    return float(np.linalg.norm(W @ v))
