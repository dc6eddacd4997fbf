"""The systems `rnn-gpu bench` times: our backends (the trainer's own step,
`Trainer.train_step`, on a synthetic corpus: data window, schedule, dropout,
clipping, the exchange and the update, with Adagrad as the baselines use)
and what users would pick instead (baselines.py), each as a `System` with
one training step and a sync."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import BackendUnavailable, get_backend
from ..data.corpus import Corpus
from ..data.vocab import Vocab
from ..parallel import SingleCommunicator
from ..training import TrainConfig, Trainer
from .baselines import make_seed_step, make_torch_step, torch_unavailable_reason

# PyTorch's systems: name -> (device, precision of baselines.TORCH_PRECISIONS)
TORCH_SYSTEMS = {"torch-cpu": ("cpu", "fp32"), "torch-cuda": ("cuda", "fp32"),
                 "torch-cuda-tf32": ("cuda", "tf32"), "torch-cuda-fp16": ("cuda", "fp16"),
                 "torch-cuda-bf16": ("cuda", "bf16")}
SYSTEMS = ("numpy", "cupy", "cupy-cublas", "opencl", *TORCH_SYSTEMS, "seed")
OUR_SYSTEMS = ("numpy", "cupy", "cupy-cublas", "opencl")
MAIN_CONFIGS = ((128, 32, 64), (512, 64, 64), (1024, 128, 50))
SEED_SHAPE = (100, 64, 25)  # the seed's H and T, batched for our systems; the seed itself runs B=1
DROPOUT = 0.3  # the dropout rows' rate
# --compare's grid: (H, B, T, layers, dropout); the main configurations with one layer and with two, and
# with two layers and dropout.
COMPARE_CONFIGS = (*((*c, 1, 0.0) for c in MAIN_CONFIGS), (*SEED_SHAPE, 1, 0.0),
                   *((*c, 2, 0.0) for c in MAIN_CONFIGS), *((*c, 2, DROPOUT) for c in MAIN_CONFIGS))
VOCAB = 65  # tiny-shakespeare's
STEPS_PER_PASS = 50  # the synthetic corpus: each stream wraps (and its state resets) every this many steps


@dataclass
class System:
    name: str
    step: object  # one training step
    sync: object
    chars_per_step: int
    backend: object = None  # ours only
    device: str = ""
    torch: tuple | None = None  # PyTorch's: (device, precision)


def our_backend(name: str):
    if name == "cupy-cublas":
        from ..backends.cupy_backend import CupyBackend

        get_backend("cupy")  # raises BackendUnavailable with the reason
        return CupyBackend(use_kernels=False)
    return get_backend(name)


def make_system(name: str, H: int, B: int, T: int, vocab: int = VOCAB, seed: int = 0, layers: int = 1,
                dropout: float = 0.0) -> System:
    """Raises BackendUnavailable when `name` cannot run here."""
    if name in OUR_SYSTEMS:
        backend = our_backend(name)
        trainer = bench_trainer(backend, H, B, T, vocab, seed, layers, dropout)

        def step():
            trainer.train_step(0.0)
            trainer.step += 1
            trainer.exchange_flags(None, 0.0)

        return System(name, step, backend.synchronize, B * T, backend, backend.device_name())
    if name in TORCH_SYSTEMS:
        device, precision = TORCH_SYSTEMS[name]
        reason = torch_unavailable_reason(device)
        if reason:
            raise BackendUnavailable(f"{name}: {reason}")
        step, sync = make_torch_step(H, B, T, vocab, device, seed, layers, dropout, precision)
        import torch

        label = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        what = {"fp32": "float32, TF32 off", "tf32": "float32, TF32 allowed (cuDNN's default)",
                "fp16": "float16", "bf16": "bfloat16"}[precision]
        return System(name, step, sync, B * T, device=f"torch {torch.__version__}, {label}, {what}",
                      torch=(device, precision))
    if name == "seed":
        if layers != 1:
            raise BackendUnavailable("seed: the original program has one layer")
        step, sync = make_seed_step(H, T, vocab, seed)
        return System(name, step, sync, T, device="NumPy float64, batch 1")
    raise ValueError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")


def bench_trainer(backend, H: int, B: int, T: int, vocab: int = VOCAB, seed: int = 0, layers: int = 1,
                  dropout: float = 0.0) -> Trainer:
    """What `rnn-gpu train` runs, on `backend`, over a random corpus of
    `vocab` symbols: Adagrad at lr 0.1 with the element-wise clip at 5, as
    the baselines train, on the default cosine schedule."""
    cfg = TrainConfig(hidden=H, layers=layers, batch=B, seq=T, steps=10**9, optimizer="adagrad", lr=0.1,
                      dropout=dropout, val_fraction=0, seed=seed, backend=backend.name).run_length()
    ids = np.random.default_rng(seed).integers(0, vocab, size=B * (T * STEPS_PER_PASS + 1))
    ids = ids.astype(np.min_scalar_type(vocab - 1))  # as a prepared corpus stores them
    corpus = Corpus(Vocab("chars", tuple(range(32, 32 + vocab))), ids, ids[:0], "random symbols")
    return Trainer(cfg, corpus, backend, None, None, SingleCommunicator())


def flops_per_char(H: int, vocab: int = VOCAB, layers: int = 1) -> float:
    """The GEMM work of one training character: forward, the L recurrences
    (2H^2 each), the L-1 input projections of layers 2..L (2H^2 each) and the
    output layer (2VH); backward twice that. Gathers, element-wise work and
    the one-hot dU are left out."""
    return 3.0 * (2 * H * H * (2 * layers - 1) + 2 * vocab * H)
