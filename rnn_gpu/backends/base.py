"""Array backends: one object carries the array module (`xp`) and the few
operations that a faster backend may replace.

The model is written once against `backend.xp`. The base class is the plain
NumPy reference: one GEMM per time step, `tanh` itself, no threads of its
own, which the tests and the kernel check (rnn_gpu/kernels/check.py) compare
against. Faster backends subclass it and override only what they do faster:
`CpuBackend` (cpu_threads.py, the registry's "numpy"), `CupyBackend`
(cupy_backend.py) and `OpenCLBackend` (opencl_backend.py). The registry
(`get_backend`) is the package's `__init__`; nothing here imports it.
"""
from __future__ import annotations

import numpy as np

from .. import dropout
from .zoneout import ZoneoutLoops

ONE_HOT_MAX_ROWS = 256  # above this, scatter-adds sort instead of multiplying by a one-hot matrix


class NumpyBackend(ZoneoutLoops):
    name = "numpy"
    xp = np

    # -- moving data -----------------------------------------------------
    def asarray(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def synchronize(self) -> None:
        pass

    def device_name(self) -> str:
        return f"NumPy {np.__version__}, CPU"

    # -- measured choices, kept with a checkpoint --------------------------
    def threads_chosen(self) -> list:
        """The choices this backend measured (none here), to keep with a checkpoint."""
        return []

    def adopt_threads_chosen(self, chosen) -> None:
        """Adopts a checkpoint's choices instead of measuring again (none to adopt here)."""

    def kernel_choices(self) -> list:
        """The kernel autotuner's choices (runner.tuned_choices), to keep with a
        checkpoint and in the cache directory; none here."""
        return []

    def adopt_kernel_choices(self, rows) -> None:
        """Adopts earlier kernel choices instead of timing again (as adopt_threads_chosen)."""

    # -- GEMMs and the sequential part -------------------------------------
    def matmul(self, a, b, out=None):
        """a @ b for 2-D arrays, into `out` when given: every GEMM of the model comes here."""
        return self.xp.matmul(a, b, out=out)

    def tanh_(self, x):
        return self.xp.tanh(x, out=x)

    def recurrence_forward(self, P, W, h0):
        """Hs[t] = tanh(P[t] + Hs[t-1] @ W.T), Hs[-1] = h0.  P: (T, B, H)."""
        Hs = self.xp.empty_like(P)
        self._forward_loop(P, self.xp.ascontiguousarray(W.T), h0, Hs)  # a row-major operand is the faster GEMM
        return Hs

    def _forward_loop(self, P, WT, h, Hs):
        xp = self.xp
        for t in range(P.shape[0]):
            out = Hs[t]
            xp.matmul(h, WT, out=out)
            out += P[t]
            self.tanh_(out)
            h = out

    # -- zoneout: the recurrence itself changes (docs/math.md, "Zoneout") ----
    def recurrence_backward(self, G, Hs, h0, W):
        """dA[t] = (1 - Hs[t]**2) * (G[t] + dA[t+1] @ W), dA[T] = 0.

        Returns (dA, dh0) with dh0 = dA[0] @ W.
        """
        dA = self.xp.empty_like(Hs)
        self._backward_loop(G, Hs, W, dA)
        return dA, self.matmul(dA[0], W)

    def _backward_loop(self, G, Hs, W, dA):
        xp = self.xp
        xp.multiply(Hs, Hs, out=dA)  # becomes 1 - Hs**2 for all steps at once, then dA in place
        xp.subtract(1, dA, out=dA)
        T = G.shape[0]
        step = xp.empty_like(G[0])
        for t in range(T - 1, -1, -1):
            if t == T - 1:
                step[...] = G[t]
            else:
                xp.matmul(dA[t + 1], W, out=step)
                step += G[t]
            dA[t] *= step

    # -- the output layer ---------------------------------------------------
    def softmax_cross_entropy_(self, O, targets):
        """Mean cross-entropy of softmax(O) (N, V) against targets (N,), as a
        0-d array (left on the device: reading it waits for the GPU). O
        becomes the gradient of that mean, (softmax(O) - onehot) / N, in place."""
        xp = self.xp
        N = O.shape[0]
        rows = xp.arange(N)
        O -= O.max(axis=1, keepdims=True)  # stable: exp of at most 0
        target_logit = O[rows, targets]
        xp.exp(O, out=O)
        sums = O.sum(axis=1)
        loss = (xp.log(sums) - target_logit).sum() / N
        O /= sums[:, None]
        O[rows, targets] -= 1
        O /= N
        return loss

    # -- dropout (rnn_gpu/dropout.py) --------------------------------------
    # The backward pass applies the forward pass's mask again, kept from the
    # forward pass or recomputed from its key. Here kept: recomputing measured
    # 1.5x the cost (bench/dropout_masks.py, rnn_gpu/dropout.py has the figures).
    keep_dropout_masks = True

    def dropout(self, x, drop, layer: int):
        """(y, saved): y = x (T, B, H) times layer `layer`'s mask of `drop`,
        a new array; `saved` is what `dropout_grad_` takes to apply it again.
        Locked masks (drop.masks) are one (1, B, H) mask for every step."""
        if drop.masks == "locked":
            return self._locked_dropout(x, drop, layer)
        mask = self._dropout_mask(drop, layer, x.shape, x.dtype)
        return x * mask, mask if self._keeps_dropout_masks() else None

    def dropout_grad_(self, G, drop, layer: int, saved) -> None:
        """G *= the mask `dropout` applied, in place."""
        G *= saved if saved is not None else self._dropout_mask(drop, layer, G.shape, G.dtype)

    def _keeps_dropout_masks(self) -> bool:
        return self.keep_dropout_masks

    def _dropout_mask(self, drop, layer: int, shape: tuple, dtype):
        return self.asarray(dropout.mask(drop, layer, shape, dtype))

    # The other masks of a step (rnn_gpu/dropout.py: locked, weight, zoneout), all from `dropout_mask`.
    def dropout_mask(self, drop, layer: int, shape: tuple, dtype):
        """The mask `rnn_gpu.dropout.mask` defines, on this backend's device
        (`layer` is the key's word, salted for the mask's kind)."""
        return self._dropout_mask(drop, layer, shape, dtype)

    def _locked_dropout(self, x, drop, layer: int):
        """Locked dropout: one (1, B, H) mask for every time step, kept for the backward pass (it is small)."""
        mask = self.dropout_mask(drop, dropout.salted("locked", layer), dropout.locked_shape(*x.shape[1:]), x.dtype)
        return x * mask, mask

    def weight_drop_mask(self, drop, layer: int, hidden: int, dtype):
        """Layer `layer`'s DropConnect mask of W, (H, H): 0 or 1 / (1 - p')."""
        return self.dropout_mask(dropout.weight_key(drop), dropout.salted("weight", layer),
                                 dropout.weight_shape(hidden), dtype).reshape(hidden, hidden)

    def zoneout_mask(self, drop, p: float, layer: int, shape: tuple, dtype):
        """1 where a unit of layer `layer` keeps its previous state, else 0: (T, B, H) of `dtype`."""
        dropped = self.dropout_mask(dropout.zoneout_key(drop, p), dropout.salted("zoneout", layer), shape, dtype)
        return (dropped == 0).astype(dtype)

    # -- optimiser updates, in place, over the whole flat buffer at once -------
    # `ok`: None, or a one-element flag on the device (step_health_'s); where
    # it is 0 the update leaves everything as it was. A fast backend tests it
    # inside its fused kernel; here the host reads its own memory. `decay`:
    # None, or decoupled weight decay's factor 1 - lr * weight_decay, applied
    # to the parameters before the update and skipped with it.
    def adagrad_update(self, p, g, mem, lr, eps, clip=None, ok=None, decay=None):
        if ok is not None and not ok[0]:
            return
        xp = self.xp
        if decay is not None:
            p *= decay
        if clip is not None:
            g = xp.clip(g, -clip, clip)
        mem += g * g
        update = xp.sqrt(mem + eps)
        xp.divide(g, update, out=update)
        update *= lr
        p -= update

    def adam_update(self, p, g, m, v, lr_t, beta1, beta2, eps, clip=None, ok=None, decay=None):
        if ok is not None and not ok[0]:
            return
        xp = self.xp
        if decay is not None:
            p *= decay
        if clip is not None:
            g = xp.clip(g, -clip, clip)
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        update = xp.sqrt(v)
        update += eps
        xp.divide(m, update, out=update)
        update *= lr_t
        p -= update

    def step_health_(self, buffer, loss, health, step: int):
        """Whether a step may update: a one-element flag, 1 when `buffer`
        (the exchanged gradients, `loss` among them) is all finite. One
        reduction: any inf or NaN makes the sum non-finite. A non-finite step
        is counted in `health` (int64: skipped steps, the first such step, 1
        if its loss was non-finite), all on the device, for the host to read
        when it needs to."""
        xp = self.xp
        ok = xp.isfinite(xp.sum(buffer)).reshape(1)
        if not ok[0]:
            health[0] += 1
            if health[1] == 0:
                health[1], health[2] = step, not xp.isfinite(loss).all()
        return ok

    # -- the gradient of the input projection ----------------------------
    def scatter_add_rows(self, index, values, num_rows, out=None):
        """out[i] = sum of values[n] over n with index[n] == i; written into
        `out` (num_rows, H), contiguous, when given.

        For a small vocabulary a one-hot GEMM, which BLAS runs on every core
        where np.add.at runs on one. Its cost grows with the rows
        (2 * rows * N * H), so larger vocabularies sort the indices and sum
        each run instead.
        """
        xp = self.xp
        if num_rows <= ONE_HOT_MAX_ROWS:
            onehot = xp.zeros((num_rows, index.size), dtype=values.dtype)
            onehot[index, xp.arange(index.size)] = 1
            return self.matmul(onehot, values, out=out)
        order = xp.argsort(index, kind="stable")
        sorted_index = index[order]
        starts = xp.flatnonzero(xp.concatenate([xp.ones(1, bool), sorted_index[1:] != sorted_index[:-1]]))
        if out is None:
            out = xp.zeros((num_rows, values.shape[1]), dtype=values.dtype)
        else:
            out.fill(0)
        out[sorted_index[starts]] = xp.add.reduceat(values[order], starts, axis=0)
        return out


class KernelBackend(NumpyBackend):
    """A backend whose recurrence runs in the fused kernels (`self.kernels`,
    a KernelRunner runner) where a variant fits the shape and device,
    and in the reference loop elsewhere. With zoneout on, the model calls
    `zoneout_forward`/`zoneout_backward`, which this class does not
    override: the reference loop on the device's arrays (no kernel variant
    has zoneout); the fused kernels run whenever zoneout is off, weight-
    dropped W (a masked copy) and residual connections included."""

    variant = None  # None: the planner's choice
    use_kernels = True

    def kernel_choices(self) -> list:
        return self.kernels.tuned_choices() if self.use_kernels else []

    def adopt_kernel_choices(self, rows) -> None:
        if self.use_kernels and rows:
            self.kernels.keep_tuned_choices(rows)

    def _kernels_fit(self, X) -> bool:
        T, B, H = X.shape
        return self.use_kernels and self.kernels.plan(H, B, X.dtype, self.variant) is not None

    def recurrence_forward(self, P, W, h0):
        if self._kernels_fit(P):
            return self.kernels.forward(P, W, h0, self.variant)
        return super().recurrence_forward(P, W, h0)

    def softmax_cross_entropy_(self, O, targets):
        if self.use_kernels:
            return self.kernels.softmax_cross_entropy_(O, targets)
        return super().softmax_cross_entropy_(O, targets)

    def recurrence_backward(self, G, Hs, h0, W):
        if self._kernels_fit(G):
            dA = self.kernels.backward(G, Hs, W, self.variant)
            return dA, self.matmul(dA[0], W)
        return super().recurrence_backward(G, Hs, h0, W)

    # The kernels recompute the mask in the backward pass: on a GPU that costs
    # arithmetic only, where keeping it costs its memory and its traffic. On
    # PoCL, which runs the GPU's path on a CPU for the tests, keeping measured
    # cheaper (its kernels copy their arrays), but it runs that path as is.
    keep_dropout_masks = False

    def _keeps_dropout_masks(self) -> bool:
        return self.keep_dropout_masks or not self.use_kernels  # without kernels the host's mask is kept

    def dropout(self, x, drop, layer: int):
        if self._keeps_dropout_masks() or drop.masks == "locked":
            return super().dropout(x, drop, layer)
        return self.kernels.dropout(x, drop, layer), None

    def dropout_mask(self, drop, layer: int, shape: tuple, dtype):
        """kernels/dropout.cu applied to ones: the mask made on the device."""
        if not self.use_kernels:
            return super().dropout_mask(drop, layer, shape, dtype)
        return self.kernels.dropout(self.xp.ones(shape, dtype=dtype), drop, layer)

    def dropout_grad_(self, G, drop, layer: int, saved) -> None:
        if saved is not None:
            return super().dropout_grad_(G, drop, layer, saved)
        self.kernels.dropout(G, drop, layer, out=G)
