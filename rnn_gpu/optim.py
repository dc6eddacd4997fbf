"""Gradient clipping and the optimisers (Adagrad, Adam).

Each update is a backend operation on whole parameters (in-place array
operations on NumPy, one fused kernel per parameter on CuPy), with the
element-wise clip folded in. Optimiser state is a dict of named arrays, which
is what a checkpoint stores.
"""
from __future__ import annotations

import math

OPTIMIZERS = ("adagrad", "adam")
DEFAULT_LR = {"adagrad": 0.1, "adam": 0.002}


def clip_elementwise(grads: dict, limit: float, xp) -> None:
    """Clamp every gradient element to [-limit, limit], as the seed does."""
    for g in grads.values():
        xp.clip(g, -limit, limit, out=g)


def global_norm(grads: dict, xp) -> float:
    return math.sqrt(sum(float(xp.vdot(g.ravel(), g.ravel())) for g in grads.values()))


def clip_global_norm(grads: dict, max_norm: float, xp) -> float:
    """Scale all gradients together so their joint L2 norm is at most max_norm."""
    norm = global_norm(grads, xp)
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


class Optimizer:
    """State is a dict of named arrays (what a checkpoint stores)."""
    state: dict

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, saved: dict, asarray) -> None:
        missing = set(self.state) - set(saved)
        if missing:
            raise ValueError(f"optimizer state lacks {', '.join(sorted(missing))}")
        for k, v in self.state.items():
            if saved[k].shape != v.shape:
                raise ValueError(f"optimizer state {k} has shape {saved[k].shape}, expected {v.shape}")
            self.state[k] = asarray(saved[k], dtype=v.dtype)


class Adagrad(Optimizer):
    name = "adagrad"

    def __init__(self, params: dict, lr: float, backend, eps: float = 1e-8):
        self.lr, self.eps, self.backend = lr, eps, backend
        self.state = {f"mem.{k}": backend.xp.zeros_like(p) for k, p in params.items()}

    def step(self, params: dict, grads: dict, clip: float | None = None) -> None:
        """One update; `clip` first clamps each gradient element to [-clip, clip]."""
        for k, p in params.items():
            self.backend.adagrad_update(p, grads[k], self.state[f"mem.{k}"], self.lr, self.eps, clip)


class Adam(Optimizer):
    name = "adam"

    def __init__(self, params: dict, lr: float, backend, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps, self.backend = lr, beta1, beta2, eps, backend
        self.state = {}
        for k, p in params.items():
            self.state[f"m.{k}"] = backend.xp.zeros_like(p)
            self.state[f"v.{k}"] = backend.xp.zeros_like(p)
        self.t = 0

    def state_dict(self) -> dict:
        return {**self.state, "t": self.t}

    def load_state_dict(self, saved: dict, asarray) -> None:
        if "t" not in saved:
            raise ValueError("optimizer state lacks t")
        super().load_state_dict(saved, asarray)
        self.t = int(saved["t"])

    def step(self, params: dict, grads: dict, clip: float | None = None) -> None:
        """One update; `clip` first clamps each gradient element to [-clip, clip]."""
        self.t += 1
        # Kingma & Ba's efficient form: the bias corrections folded into the step size
        lr_t = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        for k, p in params.items():
            self.backend.adam_update(p, grads[k], self.state[f"m.{k}"], self.state[f"v.{k}"], lr_t,
                                     self.beta1, self.beta2, self.eps, clip)


def make_optimizer(name: str, params: dict, lr: float, backend):
    if name == "adagrad":
        return Adagrad(params, lr, backend)
    if name == "adam":
        return Adam(params, lr, backend)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
