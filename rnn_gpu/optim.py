"""Gradient clipping and the optimisers (Adagrad, Adam).

Updates are in-place array operations on whole parameters, so they run
unchanged on NumPy and CuPy. Optimiser state is a dict of named arrays, which
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

    def __init__(self, params: dict, lr: float, xp, eps: float = 1e-8):
        self.lr, self.eps, self.xp = lr, eps, xp
        self.state = {f"mem.{k}": xp.zeros_like(p) for k, p in params.items()}

    def step(self, params: dict, grads: dict) -> None:
        xp = self.xp
        for k, p in params.items():
            g, mem = grads[k], self.state[f"mem.{k}"]
            mem += g * g
            update = xp.sqrt(mem + self.eps)
            xp.divide(g, update, out=update)
            update *= self.lr
            p -= update


class Adam(Optimizer):
    name = "adam"

    def __init__(self, params: dict, lr: float, xp, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps, self.xp = lr, beta1, beta2, eps, xp
        self.state = {}
        for k, p in params.items():
            self.state[f"m.{k}"] = xp.zeros_like(p)
            self.state[f"v.{k}"] = xp.zeros_like(p)
        self.t = 0

    def state_dict(self) -> dict:
        return {**self.state, "t": self.t}

    def load_state_dict(self, saved: dict, asarray) -> None:
        if "t" not in saved:
            raise ValueError("optimizer state lacks t")
        super().load_state_dict(saved, asarray)
        self.t = int(saved["t"])

    def step(self, params: dict, grads: dict) -> None:
        xp, b1, b2 = self.xp, self.beta1, self.beta2
        self.t += 1
        lr_t = self.lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for k, p in params.items():
            g, m, v = grads[k], self.state[f"m.{k}"], self.state[f"v.{k}"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            update = xp.sqrt(v)
            update += self.eps
            xp.divide(m, update, out=update)
            update *= lr_t
            p -= update


def make_optimizer(name: str, params: dict, lr: float, xp):
    if name == "adagrad":
        return Adagrad(params, lr, xp)
    if name == "adam":
        return Adam(params, lr, xp)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
