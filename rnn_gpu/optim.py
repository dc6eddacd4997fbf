"""Gradient clipping and the optimisers (Adagrad, Adam) over the flat buffers.

Parameters, gradients and optimiser state are each one contiguous array
(`layout.FlatLayout`), so every operation here runs once per step over the
whole model: a few in-place array operations on NumPy, one fused kernel on
CuPy, with the element-wise clip folded in, and decoupled weight decay
(AdamW's) where asked. `state_dict` gives the state as named views (what a
checkpoint stores, the same keys as ever).
"""
from __future__ import annotations

import math
import sys

OPTIMIZERS = ("adagrad", "adam")
DEFAULT_LR = {"adagrad": 0.1, "adam": 0.002}


TINY = sys.float_info.min  # the smallest norm divided by: a zero norm scales by 1, without a warning


def clip_elementwise(flat, limit: float, xp) -> None:
    """Clamp every gradient element to [-limit, limit], as the seed does."""
    xp.clip(flat, -limit, limit, out=flat)


def global_norm(flat, xp):
    """The L2 norm of `flat` as a 0-d float64 array, left on the device."""
    return xp.sqrt(xp.vdot(flat, flat).astype(xp.float64))


def clip_global_norm(flat, max_norm: float, xp):
    """Scale all gradients together so their joint L2 norm is at most
    max_norm. Decided on the device (a scale of exactly 1 when the norm is
    within bounds): the host never waits for the norm. Returns the norm
    before clipping, a 0-d array."""
    norm = global_norm(flat, xp)
    flat *= xp.minimum(1.0, max_norm / xp.maximum(norm, TINY)).astype(flat.dtype)
    return norm


def decay_factor(lr: float, weight_decay: float) -> float | None:
    """Decoupled weight decay's factor for the parameters, 1 - lr * weight_decay
    (applied before the update, on the update's device, skipped with it), or
    None for none."""
    return 1 - lr * weight_decay if weight_decay else None


class Optimizer:
    """State: flat buffers shaped like the parameters, named in `slots`."""
    slots: tuple[str, ...]

    def __init__(self, layout, lr: float, backend, dtype):
        self.layout, self.lr, self.backend = layout, lr, backend
        self.buffers = {s: backend.xp.zeros(layout.size, dtype=dtype) for s in self.slots}

    def slot_views(self) -> dict:
        """Named views: `mem.U`, `m.W`, ... as a checkpoint stores them."""
        return {f"{s}.{k}": v for s, buf in self.buffers.items() for k, v in self.layout.views(buf).items()}

    def state_dict(self) -> dict:
        return self.slot_views()

    def load_state_dict(self, saved: dict, asarray) -> None:
        state = self.slot_views()
        missing = set(state) - set(saved)
        if missing:
            raise ValueError(f"optimizer state lacks {', '.join(sorted(missing))}")
        for k, view in state.items():
            if saved[k].shape != view.shape:
                raise ValueError(f"optimizer state {k} has shape {saved[k].shape}, expected {view.shape}")
            view[...] = asarray(saved[k], dtype=view.dtype)


class Adagrad(Optimizer):
    name = "adagrad"
    slots = ("mem",)

    def __init__(self, layout, lr: float, backend, dtype, eps: float = 1e-8):
        super().__init__(layout, lr, backend, dtype)
        self.eps = eps

    def step(self, params, grads, clip: float | None = None, ok=None, weight_decay: float = 0.0) -> None:
        """One update of the flat `params` from the flat `grads`; `clip` first
        clamps each gradient element to [-clip, clip]; `ok`, a one-element
        device flag, skips the update where it is 0 (backend.step_health_);
        `weight_decay` (`decay_factor`) scales the parameters first, skipped with it."""
        self.backend.adagrad_update(params, grads, self.buffers["mem"], self.lr, self.eps, clip, ok,
                                    decay_factor(self.lr, weight_decay))


class Adam(Optimizer):
    name = "adam"
    slots = ("m", "v")

    def __init__(self, layout, lr: float, backend, dtype, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(layout, lr, backend, dtype)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0

    def state_dict(self) -> dict:
        return {**super().state_dict(), "t": self.t}

    def load_state_dict(self, saved: dict, asarray) -> None:
        if "t" not in saved:
            raise ValueError("optimizer state lacks t")
        super().load_state_dict(saved, asarray)
        self.t = int(saved["t"])

    def step(self, params, grads, clip: float | None = None, ok=None, weight_decay: float = 0.0) -> None:
        """As Adagrad's. A step skipped on the device (`ok` 0) still counts in
        `t`: the host does not wait to learn whether it was skipped. With
        `weight_decay`, AdamW (Loshchilov & Hutter 2019): the decay is
        decoupled from the moments, by the step's lr (not lr_t)."""
        self.t += 1
        # Kingma & Ba's efficient form: the bias corrections folded into the step size
        lr_t = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        self.backend.adam_update(params, grads, self.buffers["m"], self.buffers["v"], lr_t,
                                 self.beta1, self.beta2, self.eps, clip, ok, decay_factor(self.lr, weight_decay))


def make_optimizer(name: str, model, lr: float):
    """The optimiser for `model`'s flat buffers, on its backend."""
    kinds = {"adagrad": Adagrad, "adam": Adam}
    if name not in kinds:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return kinds[name](model.layout, lr, model.backend, model.dtype)
