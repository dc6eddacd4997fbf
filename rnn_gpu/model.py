"""The vanilla RNN over symbols (characters, bytes or word tokens), stacked L
layers deep, batched over B streams of T steps.

    h1_t = tanh(U x_t + W h1_{t-1} + b)                 layer 1 (one-hot x_t)
    hk_t = tanh(Uk h(k-1)_t + Wk hk_{t-1} + bk)          layers k = 2..L
    o_t  = V hL_t + c,   p_t = softmax(o_t)
    loss = mean over all T*B positions of -log p_t[target_t]

With dropout, the inputs of layers 2..L and of the output layer are
multiplied by masks (inverted dropout, never the recurrent connection): the
mask on layer k's states is the backend's `dropout` of a key
(`rnn_gpu.dropout.Dropout`) and k, recomputed or kept for the backward pass
as the backend does best; the model holds no random state.

The regularisers for recurrent nets (docs/math.md, "Regularisers and
initialisations"), each off by default, and off exactly as before: the key
chooses locked (variational) masks and weight drop (DropConnect on each W,
dW through the mask); the model's own `zoneout` p changes the recurrence
(training's masks from the key, the expectation without one) and
`residual` feeds layer k+1 and the output layer y_k = h_k + y_(k-1)
(y_1 = h_1); `loss` and `loss_and_grads` add AR and TAR (`ar`, `tar`) on the
top layer's output.

Only each layer's H x H recurrence is sequential (`backend.recurrence_*`);
every other operation is one large array operation over all T*B positions.
Parameters and gradients are named views into two flat buffers
(`layout.FlatLayout`); the backward pass writes the gradients in place.
"""
from __future__ import annotations

import numpy as np

from .checks import real_in
from .dropout import Dropout, used_rate
from .errors import DropoutError, UsageError
from .initialisation import INITS, OUTPUT_BIASES, init_params
from .layout import PARAM_NAMES, FlatLayout, layer_names, layers_in, param_shapes, state_shape
from .model_checks import backend_of, check_param, check_sizes

__all__ = ["INITS", "OUTPUT_BIASES", "PARAM_NAMES", "CharRNN", "Dropout", "TextRNN",
           "forward_settings", "init_params"]


def forward_settings(config: dict) -> dict:
    """TextRNN's keywords for the settings of a run's configuration (a
    checkpoint's `config`) that change the forward pass: a model that
    evaluates and samples as it trained. Absent (an older checkpoint): off."""
    config = config if isinstance(config, dict) else {}
    return {"residual": config.get("residual", False) is True, "zoneout": float(config.get("zoneout") or 0.0)}


class TextRNN:
    """The stacked vanilla RNN over a vocabulary of symbols: characters, bytes or word tokens."""

    def __init__(self, vocab_size: int, hidden_size: int, backend, dtype="float32", seed: int = 0,
                 params: dict | None = None, layers: int | None = None, reserve: int = 0, *,
                 residual: bool = False, zoneout: float = 0.0):
        """`backend`: a backend (`rnn_gpu.get_backend`) or its name. `params`:
        arrays by name (a checkpoint's), else drawn from `seed`. `reserve`:
        extra elements after the gradients in one buffer (`grad_buffer`, with
        `grad_extra` the reserved tail), for values that travel with them,
        such as a data-parallel all-reduce's loss and flags. `residual`,
        `zoneout`: the forward pass's settings (`forward_settings` reads them
        from a checkpoint's configuration)."""
        if params is not None and layers is None:
            layers = (layers_in(params) if isinstance(params, dict) else 1) or 1  # none: check_param names what lacks
        self.vocab_size, self.hidden_size, self.layers, self.dtype = check_sizes(
            vocab_size, hidden_size, 1 if layers is None else layers, dtype, seed, reserve)
        if not isinstance(residual, (bool, np.bool_)):
            raise UsageError(f"residual= must be True or False, got {residual!r}")
        if not (real_in(zoneout, 0, 1) and zoneout < 1):
            raise UsageError(f"zoneout= must be a number in [0, 1), got {zoneout!r}")
        self.residual, self.zoneout = bool(residual), float(zoneout)
        # The probability zoneout's masks use (p rounded to a multiple of 2^-16): the expectation's too.
        self.zoneout_rate = used_rate(self.zoneout)
        self.backend = backend_of(backend)
        self.layout = FlatLayout(param_shapes(self.vocab_size, self.hidden_size, self.layers))
        xp = self.backend.xp
        self.flat = xp.zeros(self.layout.size, dtype=self.dtype)  # all parameters
        self.grad_buffer = xp.zeros(self.layout.size + reserve, dtype=self.dtype)
        self.grad_flat = self.grad_buffer[:self.layout.size]  # all gradients, written by the backward pass
        self.grad_extra = self.grad_buffer[self.layout.size:]
        self.params = self.layout.views(self.flat)
        self.grads = self.layout.views(self.grad_flat)
        if params is None:
            params = init_params(self.vocab_size, self.hidden_size, seed, self.layers)
        for k, view in self.params.items():
            view[...] = self.backend.asarray(check_param(params, k, view.shape), dtype=self.dtype)

    def zero_state(self, batch: int):
        """(B, H) for one layer, (L, B, H) for more."""
        return self.backend.xp.zeros(self.state_shape(batch), dtype=self.dtype)

    def state_shape(self, batch: int) -> tuple:
        return state_shape(self.layers, batch, self.hidden_size)

    # -- forward pieces shared by training and evaluation ------------------
    def _layer_input(self, k, inputs, X):
        """P = Uk X + bk for all T*B positions at once (for layer 1, whose
        one-hot inputs are a gather of U's columns, X is None)."""
        xp, H = self.backend.xp, self.hidden_size
        U, _, b = (self.params[n] for n in layer_names(k))
        if k == 1:
            P = xp.take(self.layout.stored(self.params, "U"), inputs, axis=0)  # rows of U's transpose: no one-hot GEMM
        else:
            P = self.backend.matmul(X.reshape(-1, H), U.T).reshape(X.shape)
        P += b
        return P

    def _forward(self, inputs, h0, dropout):
        """Each layer's (input, states), the output layer's input, and what
        the backend saved of each dropout mask for the backward pass."""
        layers, top, saved, _ = self._forward_layers(inputs, h0, dropout)
        return [(layer.X, layer.Hs) for layer in layers], top, saved

    def _forward_layers(self, inputs, h0, dropout):
        """Each layer's `Layer` (its input, states and what its backward pass
        needs), the output layer's input, what the backend saved of each
        dropout mask for the backward pass, and the top layer's output before
        its dropout (TAR's)."""
        be, layers, X, saved, below = self.backend, [], None, [], None
        drop_units = dropout is not None and dropout.p > 0
        for k in range(1, self.layers + 1):
            W = self.params[layer_names(k)[1]]
            weight_mask = None
            if dropout is not None and dropout.weight_drop > 0:  # DropConnect: the step's masked copy of W
                weight_mask = be.weight_drop_mask(dropout, k, self.hidden_size, self.dtype)
                W = W * weight_mask
            P = self._layer_input(k, inputs, X)
            if self.zoneout > 0:  # the reference loop on every backend: no kernel variant has it
                Z = (self.zoneout_rate if dropout is None else
                     be.zoneout_mask(dropout, self.zoneout, k, P.shape, self.dtype))
                Hs, C = be.zoneout_forward(P, W, h0[k - 1], Z)
            else:
                Hs, C, Z = be.recurrence_forward(P, W, h0[k - 1]), None, None
            layers.append(Layer(X, Hs, W, weight_mask, C, Z))
            below = Hs if below is None or not self.residual else Hs + below  # y_k = h_k (+ y_(k-1))
            X = below
            if drop_units:  # the input of the layer above, or of the output layer
                X, mask = be.dropout(below, dropout, k)
                saved.append(mask)
        return layers, X, saved, below

    def _logits(self, top):
        O = self.backend.matmul(top.reshape(-1, self.hidden_size), self.params["V"].T)
        O += self.params["c"]
        return O

    def _last_state(self, layers):
        h = self.backend.xp.stack([layer.Hs[-1] for layer in layers])
        return h[0] if self.layers == 1 else h

    def _activation_terms(self, top, output, ar: float, tar: float):
        """AR + TAR (Merity et al. 2017) as a 0-d array, or None when both are
        0: ar * mean(top^2) over the output layer's (dropped) input, tar *
        mean((y_t - y_(t-1))^2) over the top layer's output y within the window."""
        xp, total = self.backend.xp, None
        if ar:
            total = ar * xp.mean(top * top)
        if tar and output.shape[0] > 1:
            D = output[1:] - output[:-1]
            term = tar * xp.mean(D * D)
            total = term if total is None else total + term
        return total

    # -- tied input and output weights (V = U^T) --------------------------
    def tie_gradients(self) -> None:
        """The gradients of a model whose V is U's transpose (training's
        tie_weights): the loss's gradient with respect to the one matrix, dU +
        dV^T, in U's place and zero in V's, so that a global norm counts it
        once and the optimiser leaves V alone until `copy_tied`."""
        dU = self.layout.stored(self.grads, "U")  # (V, H), as dV
        dU += self.grads["V"]
        self.grads["V"][...] = 0

    def copy_tied(self) -> None:
        """V = U^T (after an update of U)."""
        self.params["V"][...] = self.layout.stored(self.params, "U")

    # -- public API ---------------------------------------------------------
    def _dropout(self, dropout):
        """The key of the masks to apply, or None for none (zoneout's masks
        come from the key too: without one it takes the expectation)."""
        if dropout is not None and not isinstance(dropout, Dropout):
            raise DropoutError(f"dropout= takes an rnn_gpu.Dropout or None, not {type(dropout).__name__}")
        active = dropout is not None and (dropout.p > 0 or dropout.weight_drop > 0 or self.zoneout > 0)
        return dropout if active else None

    @staticmethod
    def _check_terms(ar, tar) -> tuple[float, float]:
        for name, value in (("ar", ar), ("tar", tar)):
            if not real_in(value, 0, 1e6):
                raise UsageError(f"{name}= must be a number >= 0, got {value!r}")
        return float(ar), float(tar)

    def prepare(self, inputs, targets, h0):
        """Device arrays; h0 as (L, B, H) whatever the depth."""
        be = self.backend
        inputs = be.asarray(inputs, dtype=np.int64)
        targets = be.asarray(targets, dtype=np.int64).reshape(-1)
        h0 = be.asarray(h0, dtype=self.dtype)
        expected = self.state_shape(inputs.shape[1])
        if h0.shape != expected:
            raise ValueError(f"h0 has shape {h0.shape}, expected {expected}")
        return inputs, targets, h0.reshape(self.layers, *h0.shape[-2:])

    def check_window(self, inputs, targets, h0) -> None:
        """What the public passes take: (T, B) integer ids of this vocabulary
        and a finite (B, H) or (L, B, H) float state; a UsageError otherwise."""
        xp = self.backend.xp
        arrays = []
        for name, value in (("inputs", inputs), ("targets", targets)):
            try:
                ids = xp.asarray(value)
                ok = ids.ndim == 2 and ids.dtype.kind in "iu" and ids.size > 0
                ok = ok and int(ids.min()) >= 0 and int(ids.max()) < self.vocab_size
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise UsageError(f"{name}= must be a (T, B) array of integer ids in [0, {self.vocab_size}), T and B "
                                 "at least 1")
            arrays.append(ids)
        if arrays[0].shape != arrays[1].shape:
            raise UsageError(f"inputs= has shape {arrays[0].shape} but targets= {arrays[1].shape}")
        expected = self.state_shape(arrays[0].shape[1])
        try:
            state = xp.asarray(h0)
            ok = state.shape == expected and state.dtype.kind == "f" and bool(xp.isfinite(state).all())
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(f"h0= must be a finite float array of shape {expected} (zero_state gives one)")

    def loss(self, inputs, targets, h0, dropout=None, *, ar=0.0, tar=0.0):
        """Mean NLL (nats) and the last hidden state, without gradients; with
        `ar` or `tar`, the objective `loss_and_grads` differentiates."""
        self.check_window(inputs, targets, h0)
        ar, tar = self._check_terms(ar, tar)
        inputs, targets, h0 = self.prepare(inputs, targets, h0)
        layers, top, _, output = self._forward_layers(inputs, h0, self._dropout(dropout))
        loss = self.backend.softmax_cross_entropy_(self._logits(top), targets)
        terms = self._activation_terms(top, output, ar, tar)
        return float(loss if terms is None else loss + terms), self._last_state(layers)

    def loss_and_grads(self, inputs, targets, h0, dropout=None, *, ar=0.0, tar=0.0):
        """inputs, targets: (T, B) integers; h0: (B, H), or (L, B, H) for L > 1.

        Returns (loss, grads, h_last): the mean NLL in nats as a float, the
        gradients of that mean (`self.grads`: views into `self.grad_flat`,
        overwritten by the next call) and the last hidden state. `dropout`:
        an `rnn_gpu.dropout.Dropout` naming the masks, None (or p = 0) for none.
        `ar`, `tar`: activation regularisation's coefficients, whose terms
        the loss then includes (the objective).
        """
        self.check_window(inputs, targets, h0)
        ar, tar = self._check_terms(ar, tar)
        loss, grads, h_last = self.loss_and_grads_on_device(inputs, targets, h0, dropout, ar=ar, tar=tar)
        return float(loss), grads, h_last

    def loss_and_grads_on_device(self, inputs, targets, h0, dropout=None, ar=0.0, tar=0.0):
        """As `loss_and_grads`, the loss a 0-d array left on the device: the
        trainer's form, which never waits for the device to finish (nor
        checks its inputs: the trainer's windows are checked as they are read)."""
        loss, grads, _, h_last = self._with_h0(inputs, targets, h0, dropout, ar, tar)
        return loss, grads, h_last

    def loss_and_grads_with_h0(self, inputs, targets, h0, dropout=None, *, ar=0.0, tar=0.0):
        """As `loss_and_grads`, plus the gradient for h0: (loss, grads, dh0, h_last)."""
        self.check_window(inputs, targets, h0)
        ar, tar = self._check_terms(ar, tar)
        loss, grads, dh0, h_last = self._with_h0(inputs, targets, h0, dropout, ar, tar)
        return float(loss), grads, dh0, h_last

    def _with_h0(self, inputs, targets, h0, dropout, ar=0.0, tar=0.0):
        inputs, targets, h0 = self.prepare(inputs, targets, h0)
        return self._loss_and_grads(inputs, targets, h0, self._dropout(dropout), ar, tar)

    def _loss_and_grads(self, inputs, targets, h0, dropout, ar=0.0, tar=0.0):
        be, xp, H, g = self.backend, self.backend.xp, self.hidden_size, self.grads
        layers, top, saved, output = self._forward_layers(inputs, h0, dropout)
        B = top.shape[1]
        dO = self._logits(top)
        loss = be.softmax_cross_entropy_(dO, targets)  # dO: the gradient for the logits
        terms = self._activation_terms(top, output, ar, tar)
        if terms is not None:
            loss = loss + terms

        be.matmul(dO.T, top.reshape(-1, H), out=g["V"])
        xp.sum(dO, axis=0, out=g["c"])
        G = be.matmul(dO, self.params["V"]).reshape(top.shape)  # the gradient for the top layer's states
        if ar:
            G += (2 * ar / top.size) * top
        if dropout is not None and dropout.p > 0:
            be.dropout_grad_(G, dropout, self.layers, saved[-1])
        if tar and output.shape[0] > 1:
            D = output[1:] - output[:-1]
            D *= 2 * tar / D.size
            G[1:] += D
            G[:-1] -= D
        dh0 = xp.empty_like(h0)
        for k in range(self.layers, 0, -1):
            layer = layers[k - 1]
            X, Hs = layer.X, layer.Hs
            nU, nW, nb = layer_names(k)
            if layer.C is None:
                dA, dh0[k - 1] = be.recurrence_backward(G, Hs, h0[k - 1], layer.W)
            else:
                dA, dh0[k - 1] = be.zoneout_backward(G, Hs, layer.C, h0[k - 1], layer.W, layer.Z)
            dAf, Hf = dA.reshape(-1, H), Hs.reshape(-1, H)
            be.matmul(dAf[B:].T, Hf[:-B], out=g[nW])  # step t pairs dA[t] with Hs[t-1] ...
            g[nW] += be.matmul(dA[0].T, h0[k - 1])  # ... and step 0 with h0
            if layer.weight_mask is not None:  # through DropConnect's mask
                g[nW] *= layer.weight_mask
            xp.sum(dAf, axis=0, out=g[nb])
            if k == 1:
                be.scatter_add_rows(inputs.reshape(-1), dAf, self.vocab_size, out=self.layout.stored(g, "U"))
            else:
                be.matmul(dAf.T, X.reshape(-1, H), out=g[nU])
                below = be.matmul(dAf, self.params[nU]).reshape(Hs.shape)  # the gradient for the layer below
                if dropout is not None and dropout.p > 0:
                    be.dropout_grad_(below, dropout, k - 1, saved[k - 2])
                if self.residual:  # y_k = h_k + y_(k-1): y_k's gradient passes down unmasked
                    below += G
                G = below
        dh0 = dh0[0] if self.layers == 1 else dh0
        return loss, g, dh0, self._last_state(layers)

    def sample(self, length: int = 500, vocab=None, **options):
        """Generated text from this model (options as rnn_gpu.sample takes
        them); `vocab` defaults to the one `rnn_gpu.load` attached."""
        from .sample import sample

        return sample(self, vocab, length, **options)


CharRNN = TextRNN  # its first name, from when it modelled characters alone


class Layer:
    """What the forward pass keeps of one layer for the backward pass: its
    input X (None for layer 1), states Hs, the W it used (weight-dropped:
    the masked copy, and `weight_mask`), and with zoneout the candidates C
    and the masks Z (a number: the expectation)."""

    __slots__ = ("X", "Hs", "W", "weight_mask", "C", "Z")

    def __init__(self, X, Hs, W, weight_mask=None, C=None, Z=None):
        self.X, self.Hs, self.W, self.weight_mask, self.C, self.Z = X, Hs, W, weight_mask, C, Z
