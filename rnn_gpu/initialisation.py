"""The initial weights of a new model, drawn on the host in float64 so that
every backend and dtype starts from the same numbers for the same seed: U,
W and V uniform in [-1/sqrt(n), 1/sqrt(n)] with n the fan-in (the default),
or each W orthogonal or a scaled identity (IRNN); biases zero."""
from __future__ import annotations

import numpy as np

from .checks import real_in
from .errors import UsageError
from .layout import layer_names, param_shapes

INITS = ("uniform", "orthogonal", "identity")  # the recurrent weights' initialisations
OUTPUT_BIASES = ("zero", "unigram")  # the output bias's: zero, or the training part's unigram log-frequencies


def init_params(vocab_size: int, hidden_size: int, seed: int, layers: int = 1, init: str = "uniform",
                scale: float = 1.0) -> dict[str, np.ndarray]:
    """Uniform in [-1/sqrt(n), 1/sqrt(n)] with n the fan-in; biases zero.

    Drawn on the host in float64 so every backend and dtype starts from the
    same numbers for the same seed. U, W and V are drawn first, so layer 1
    and the output layer are the same for every depth (and a one-layer model
    is the same as it always was); deeper layers' weights follow.

    `init` (INITS) chooses each layer's recurrent W: uniform as above,
    orthogonal (the Q of a Gaussian matrix's QR, signs fixed so that it is
    uniform over the orthogonal group; drawn after all the uniform draws,
    so every other weight is the same as uniform's), or the identity (IRNN,
    Le et al. 2015); each times `scale`.
    """
    if init not in INITS:
        raise UsageError(f"init= must be one of {', '.join(INITS)}, got {init!r}")
    if not real_in(scale, 0, 1e6, low_inclusive=False):
        raise UsageError(f"init_scale= must be a number > 0, got {scale!r}")
    rng = np.random.default_rng(seed)
    params = _uniform_params(vocab_size, hidden_size, layers, rng)
    if init == "uniform" and scale == 1:
        return params
    for k in range(1, layers + 1):  # from the generator's stream after the uniform draws
        W = layer_names(k)[1]
        if init == "orthogonal":
            q, r = np.linalg.qr(rng.standard_normal((hidden_size, hidden_size)))
            params[W] = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        elif init == "identity":
            params[W] = np.eye(hidden_size)
        params[W] = params[W] * scale
    return params


def _uniform_params(vocab_size: int, hidden_size: int, layers: int, rng) -> dict[str, np.ndarray]:
    H = hidden_size

    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)

    params = {"U": uniform((H, vocab_size), vocab_size), "W": uniform((H, H), H),
              "V": uniform((vocab_size, H), H)}
    for k in range(2, layers + 1):
        U, W, _ = layer_names(k)
        params[U] = uniform((H, H), H)
        params[W] = uniform((H, H), H)
    shapes = param_shapes(vocab_size, H, layers)
    return {k: params[k] if k in params else np.zeros(shapes[k]) for k in shapes}
