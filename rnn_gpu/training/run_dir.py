"""The run directory: rank 0's metrics log and the directory's lock, and
the run's description on stderr before its first step."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt_io
from ..data.corpus import Corpus
from ..fileio import check_writable, lock_directory, make_directory, remove_file
from .config import TrainConfig
from .metrics import MetricsLog


def open_metrics(out: Path, resume_step: int | None, comm) -> MetricsLog | None:
    """Rank 0's run directory and metrics log, once every rank is ready: the
    directory is made and tried for writing now, the log at its first record
    (a resumed run's log rewound to the checkpoint's step)."""
    if not comm.master_process:
        return None
    made_directory = make_directory(out)
    check_writable(out)
    lock = lock_directory(out)
    try:
        if resume_step is None:  # a new run: an earlier run's best would pass for this one's
            remove_file(out / ckpt_io.BEST_FILENAME)
        log = MetricsLog(out / "metrics.jsonl", resume_step, lock)
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    log.made_directory = made_directory
    return log


def describe_run(cfg: TrainConfig, trainer, corpus: Corpus, resumed: bool, stream=None) -> None:
    """What the run is, before its first step (stderr)."""
    stream = stream or sys.stderr
    model, be = trainer.model, trainer.backend
    n_params = sum(int(np.prod(v.shape)) for k, v in model.params.items() if not (cfg.tie_weights and k == "V"))
    total = len(corpus.train) + len(corpus.val)
    lines = [
        f"corpus: {corpus.source}",
        f"  {total:,} symbols: {len(corpus.train):,} for training, {len(corpus.val):,} held out "
        f"(--val-fraction {cfg.val_fraction}; each evaluation reads "
        f"{'all of them' if not cfg.val_chars or cfg.val_chars >= len(corpus.val) else f'{cfg.val_chars:,}'})",
        f"vocabulary: {len(corpus.vocab)} symbols ({corpus.vocab.kind})",
        f"model: {model.layers} layer{'s' if model.layers > 1 else ''} of {model.hidden_size} units, "
        f"{n_params:,} parameters{' (V tied to U)' if cfg.tie_weights else ''}, dropout {cfg.dropout}",
        f"training: batch {cfg.batch} x seq {cfg.seq}, {cfg.optimizer} lr {cfg.learning_rate:g} "
        f"({cfg.lr_schedule}, warm-up {cfg.warmup}), "
        + ", ".join(x for x in (f"{cfg.steps} steps" if cfg.steps else "", f"{cfg.time:g} s" if cfg.time else "") if x)
        + (f"; resumed at step {trainer.step}" if resumed else ""),
        f"backend: {be.name} on {be.device_name()}, {model.dtype.name}"
        + (f", {trainer.comm.size} processes" if trainer.comm.size > 1 else ""),
    ]
    if trainer.comm.size > 1:
        lines.append(f"gradients: {trainer.comm.exchange}")
    if corpus.prepared:
        lines.append(f"prepared corpus: {corpus.prepared}")
    print("\n".join(lines), file=stream, flush=True)
