"""The trainer: model, optimiser, data position and hidden state, which is
what a checkpoint saves, and one training step over them."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt_io
from ..data.corpus import Corpus
from ..data.sources import as_specs
from ..data.streams import BatchStream
from ..dropout import Dropout
from ..errors import CheckpointError, UsageError
from ..model import TextRNN, init_params
from ..optim import clip_elementwise, clip_global_norm, make_optimizer
from ..tuning_cache import load_kernel_choices, save_kernel_choices
from .config import TrainConfig
from .stopping import FlagExchange, check_health, stop_flags

# What travels with the gradients in the one all-reduce of a step, after them in the same buffer.
EXCHANGED = ("loss",)
COUNT_CHUNK = 1 << 24  # ids counted at a time for the unigram bias (the training part may be a memory map)


def unigram_log_frequencies(ids, vocab_size: int, chunk: int = COUNT_CHUNK) -> np.ndarray:
    """log((n_i + 1) / (N + V)) for each symbol i of the N training ids
    (add-one smoothing: a symbol never seen gets a finite bias), float64.
    One np.bincount per chunk of `chunk` ids, so a memory-mapped corpus is
    read once, never whole into memory; ids at or beyond `vocab_size` are
    not counted (the windows' check names them where they are read)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(ids), chunk):
        counts += np.bincount(np.asarray(ids[start:start + chunk]), minlength=vocab_size)[:vocab_size]
    return np.log((counts + 1.0) / (int(counts.sum()) + vocab_size))


def initial_params(cfg: TrainConfig, corpus: Corpus, initial: dict | None) -> dict:
    """A new run's parameters: `initial` (--init-from) as they are, else
    drawn from the seed as --init and --init-scale say, the output bias
    from --output-bias; with --tie-weights, V is U's transpose."""
    if initial is not None:  # TrainConfig._check refuses init settings beside init_from
        params = dict(initial)
    else:
        params = init_params(len(corpus.vocab), cfg.hidden, cfg.seed, cfg.layers, init=cfg.init,
                             scale=cfg.init_scale)
    if cfg.output_bias == "unigram":
        params["c"] = unigram_log_frequencies(corpus.train, len(corpus.vocab))
    if cfg.tie_weights:
        params["V"] = np.array(np.asarray(params["U"]).T)
    return params


def place_ids(backend, ids):
    """The encoded training text on the device when it fits comfortably (1 or
    2 bytes a character), else on the host, from where windows are copied.
    Returns (the ids, the array module of where they are)."""
    if backend.xp is np:
        return ids, np
    free, _ = backend.xp.cuda.runtime.memGetInfo()
    if ids.nbytes < free // 4:
        return backend.asarray(ids), backend.xp
    return ids, np


def rank_streams(batch: int, comm) -> slice:
    """The streams rank r owns: [r*B/N, (r+1)*B/N) of the same B-stream layout."""
    if batch % comm.size:
        raise UsageError(f"batch={batch} is not divisible by the {comm.size} processes of this job")
    share = batch // comm.size
    return slice(comm.rank * share, (comm.rank + 1) * share)


@dataclass
class StepResult:
    loss: object  # the mean over all ranks: a one-element device array, valid until the next step
    lr: float
    ok: object  # a one-element device flag: the update was applied (the gradients were finite)
    allreduce_s: float


class Trainer:
    """Each rank holds its own streams' states; everything else is the same on every rank."""

    def __init__(self, cfg: TrainConfig, corpus: Corpus, backend, saved: ckpt_io.Checkpoint | None, corpus_path,
                 comm, initial: dict | None = None):
        """`saved`: the checkpoint a resumed run continues; `initial`: a new
        run's starting weights (`--init-from`), else drawn from the seed."""
        self.cfg, self.corpus, self.backend, self.comm = cfg, corpus, backend, comm
        self.corpus_path = None if corpus_path is None else [str(Path(s).resolve()) for s in as_specs(corpus_path)]
        self.streams = rank_streams(cfg.batch, comm)
        self.local_batch = self.streams.stop - self.streams.start
        self.model = TextRNN(len(corpus.vocab), cfg.hidden, backend, dtype=cfg.dtype, seed=cfg.seed,
                             params=saved.params if saved else initial_params(cfg, corpus, initial),
                             layers=cfg.layers, reserve=len(EXCHANGED), residual=cfg.residual, zoneout=cfg.zoneout)
        self.optimizer = make_optimizer(cfg.optimizer, self.model, cfg.learning_rate)
        self.schedule = cfg.schedule()
        ids, xp = place_ids(backend, corpus.train)
        self.stream = BatchStream(ids, cfg.batch, cfg.seq, position=saved.position if saved else 0, xp=xp,
                                  streams=self.streams, vocab_size=len(corpus.vocab), data_file=corpus.data_file)
        self.h = self.model.zero_state(self.local_batch)
        self.step, self.best_val_loss, self.elapsed_before = 0, None, 0.0
        self.saved_step = None  # the step of the last checkpoint.npz written
        # Non-finite steps of this run, counted on the device (backend.step_health_): read when needed.
        self.health = backend.xp.zeros(3, dtype=np.int64)
        self.flags = FlagExchange(comm)
        backend.adopt_kernel_choices(load_kernel_choices())  # earlier runs' launch plans on this device
        self.cached_choices = None  # the kernel choices last written to the cache directory
        if saved:
            self._restore(saved)

    def _restore(self, saved: ckpt_io.Checkpoint) -> None:
        be = self.backend
        try:
            self.optimizer.load_state_dict(saved.optimizer_state, be.asarray)
            be.adopt_threads_chosen(saved.cpu_threads)
            be.adopt_kernel_choices(saved.kernel_choices)  # the run's own, over the cache's
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"cannot resume: {exc}") from None
        self.h = be.asarray(saved.h[..., self.streams, :], dtype=self.cfg.dtype)
        self.step, self.best_val_loss, self.elapsed_before = saved.step, saved.best_val_loss, saved.elapsed_s

    def train_step(self, elapsed: float) -> StepResult:
        """One step, `elapsed` seconds into the run: gradients on this rank's
        streams, one all-reduce of the gradients with the loss, then the same
        update on every rank, skipped on the device if anything is not
        finite. The host never waits for the device here: the loss and the
        health counts stay there (`read_loss`, `read_health`)."""
        cfg, model, be = self.cfg, self.model, self.backend
        lr = self.optimizer.lr = self.schedule(self.step + 1, elapsed)
        window, reset = self.stream.next()
        if reset:
            self.h = model.zero_state(self.local_batch)
        loss, _, h = model.loss_and_grads_on_device(window[:-1], window[1:], self.h, self.dropout(self.step + 1),
                                                    cfg.ar, cfg.tar)
        be.xp.copyto(model.grad_extra[:1], loss)  # on the device: no host read
        start = time.perf_counter()
        self.comm.allreduce_mean_(model.grad_buffer)
        allreduce_s = time.perf_counter() - start
        loss = model.grad_extra[:1]
        if cfg.tie_weights:
            model.tie_gradients()
        ok = be.step_health_(model.grad_buffer, loss, self.health, self.step + 1)
        if cfg.clip_norm is None:
            self.optimizer.step(model.flat, model.grad_flat, clip=cfg.clip, ok=ok, weight_decay=cfg.weight_decay)
        else:  # element-wise first, then the global norm of what is left
            clip_elementwise(model.grad_flat, cfg.clip, be.xp)
            clip_global_norm(model.grad_flat, cfg.clip_norm, be.xp)
            self.optimizer.step(model.flat, model.grad_flat, ok=ok, weight_decay=cfg.weight_decay)
        if cfg.tie_weights:
            model.copy_tied()
        # A skipped step starts its streams afresh (only --skip-nonfinite runs on past one).
        self.h = be.xp.where(ok, h, 0) if cfg.skip_nonfinite else h
        return StepResult(loss, lr, ok, allreduce_s)

    def exchange_flags(self, signal_received: int | None, elapsed: float) -> tuple[int | None, bool]:
        """This rank's stop flags after a step out, every rank's of the step before in (`FlagExchange`)."""
        return self.flags(stop_flags(signal_received, elapsed, self.cfg.time))

    def read_loss(self, result: StepResult) -> float:
        """The step's mean loss on the host: waits for the device."""
        return float(self.backend.to_host(result.loss)[0])

    def read_health(self) -> int:
        """The steps skipped so far as not finite: waits for the device (`stopping.check_health`)."""
        return check_health(self.backend.to_host(self.health), self.cfg.skip_nonfinite, self.flags)

    def dropout(self, step: int) -> Dropout | None:
        """The masks of training step `step` (counting from 1) for this
        rank's streams: a function of the seed and the step alone, so a
        resumed run needs nothing more and every rank split draws the same.
        Dropout's (step or locked), weight drop's and zoneout's alike; None
        when the run has none of them."""
        cfg = self.cfg
        if not (cfg.dropout or cfg.weight_drop or cfg.zoneout):
            return None
        return Dropout(cfg.dropout, cfg.seed, step, self.streams.start, masks=cfg.dropout_masks,
                       weight_drop=cfg.weight_drop)

    def checkpoint(self, path: Path, elapsed: float) -> None:
        """Collective: the hidden states are gathered in rank order into the
        (layers, B, H) array one process would hold; rank 0 writes."""
        be = self.backend
        h = self.comm.gather_streams(be.to_host(self.h), axis=-2)
        if path.name == ckpt_io.FILENAME:
            self.saved_step = self.step
        if not self.comm.master_process:
            return
        kernel_choices = be.kernel_choices()
        if kernel_choices != self.cached_choices:  # they change in the first steps only
            save_kernel_choices(kernel_choices)
            self.cached_choices = kernel_choices
        ckpt_io.save_checkpoint(path, ckpt_io.Checkpoint(
            params={k: be.to_host(v) for k, v in self.model.params.items()},
            vocab=self.corpus.vocab,
            config={**dataclasses.asdict(self.cfg), "corpus": self.corpus_path},
            step=self.step,
            position=self.stream.position,
            h=h,
            optimizer_state={k: be.to_host(v) for k, v in self.optimizer.state_dict().items()},
            best_val_loss=self.best_val_loss,
            elapsed_s=elapsed,
            cpu_threads=be.threads_chosen(),
            kernel_choices=kernel_choices,
        ))
