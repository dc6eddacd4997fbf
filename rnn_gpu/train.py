"""The training loop. Defaults live in `TrainConfig`; `train()` reads top to bottom."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt_io
from .backend import get_backend
from .data import BatchStream, Corpus, CorpusError, evaluation_windows, load_corpus
from .model import CharRNN
from .optim import DEFAULT_LR, clip_elementwise, clip_global_norm, make_optimizer


@dataclass
class TrainConfig:
    hidden: int = 256
    batch: int = 32
    seq: int = 64
    steps: int | None = 2000  # None: until `time` runs out
    time: float | None = None  # seconds of training, if set
    optimizer: str = "adagrad"
    lr: float | None = None  # None: the optimiser's default (adagrad 0.1, adam 0.002)
    clip: float = 5.0  # element-wise clip, as in the seed
    clip_norm: float | None = None  # global-norm clip, if set
    vocab: str = "chars"
    val_fraction: float = 0.1
    eval_every: int = 200
    checkpoint_every: int = 500
    log_every: int = 10
    backend: str = "auto"
    dtype: str = "float32"
    seed: int = 0

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


def evaluate(model: CharRNN, data: np.ndarray, batch: int, seq: int) -> float:
    """Mean NLL (nats) over all of `data`, hidden state carried across windows."""
    total, count, h = 0.0, 0, None
    for window in evaluation_windows(data, batch, seq):
        if h is None:
            h = model.zero_state(window.shape[1])
        loss, h = model.loss(window[:-1], window[1:], h)
        n = window[1:].size
        total, count = total + loss * n, count + n
    return total / count


class MetricsLog:
    """DIR/metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path: Path):
        self.file = open(path, "w", encoding="utf-8")

    def write(self, **record) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def check_corpus_fits(corpus: Corpus, cfg: TrainConfig) -> None:
    BatchStream(corpus.train, cfg.batch, cfg.seq)  # raises CorpusError if too short
    if cfg.val_fraction > 0 and len(corpus.val) < 2:
        raise CorpusError(
            f"validation part has {len(corpus.val)} symbols; raise --val-fraction or pass --val-fraction 0"
        )


def save(out: Path, model: CharRNN, corpus: Corpus, cfg: TrainConfig, step, stream, h, optimizer):
    be = model.backend
    ckpt_io.save_checkpoint(out / ckpt_io.FILENAME, ckpt_io.Checkpoint(
        params={k: be.to_host(v) for k, v in model.params.items()},
        vocab=corpus.vocab,
        config=dataclasses.asdict(cfg),
        step=step,
        position=stream.position,
        h=be.to_host(h),
        optimizer_state={k: be.to_host(v) for k, v in optimizer.state.items()},
    ))


def train(cfg: TrainConfig, corpus_path, out: Path, progress: bool = True) -> dict:
    """Trains per `cfg` on the corpus (None: the embedded default), writing
    DIR/metrics.jsonl and DIR/checkpoint.npz. Returns the final metrics."""
    from tqdm import tqdm

    backend = get_backend(cfg.backend)
    corpus = load_corpus(corpus_path, cfg.vocab, cfg.val_fraction)
    check_corpus_fits(corpus, cfg)
    out.mkdir(parents=True, exist_ok=True)

    model = CharRNN(len(corpus.vocab), cfg.hidden, backend, dtype=cfg.dtype, seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, cfg.learning_rate, backend.xp)
    stream = BatchStream(corpus.train, cfg.batch, cfg.seq)
    h = model.zero_state(cfg.batch)
    metrics = MetricsLog(out / "metrics.jsonl")
    bar = tqdm(total=cfg.steps, disable=not progress, unit="step", dynamic_ncols=True)

    start = time.perf_counter()
    interval_seconds, interval_chars = 0.0, 0  # training time only, evaluation excluded
    val_loss, step, record = None, 0, {}
    while True:
        step += 1
        step_start = time.perf_counter()
        window, reset = stream.next()
        if reset:
            h = model.zero_state(cfg.batch)
        loss, grads, h = model.loss_and_grads(window[:-1], window[1:], h)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step}: loss is {loss}")
        clip_elementwise(grads, cfg.clip, backend.xp)
        if cfg.clip_norm is not None:
            clip_global_norm(grads, cfg.clip_norm, backend.xp)
        optimizer.step(model.params, grads)
        interval_chars += stream.symbols_per_step
        interval_seconds += time.perf_counter() - step_start

        elapsed = time.perf_counter() - start
        last = (cfg.steps is not None and step >= cfg.steps) or (cfg.time is not None and elapsed >= cfg.time)
        evaluate_now = cfg.val_fraction > 0 and (step % cfg.eval_every == 0 or last)
        if evaluate_now:
            val_loss = evaluate(model, corpus.val, cfg.batch, cfg.seq)
        if step % cfg.log_every == 0 or evaluate_now or last:
            record = {"step": step, "train_loss": loss, "chars": step * stream.symbols_per_step,
                      "chars_per_s": interval_chars / max(interval_seconds, 1e-9),
                      "elapsed_s": time.perf_counter() - start}
            if evaluate_now:
                record["val_loss"] = val_loss
            metrics.write(**record)
            interval_seconds, interval_chars = 0.0, 0
            bar.set_postfix(loss=f"{loss:.3f}", val="-" if val_loss is None else f"{val_loss:.3f}",
                            cps=f"{record['chars_per_s']:.0f}")
        bar.update(1)
        if step % cfg.checkpoint_every == 0 or last:
            save(out, model, corpus, cfg, step, stream, h, optimizer)
        if last:
            break
    bar.close()
    metrics.close()
    return record
