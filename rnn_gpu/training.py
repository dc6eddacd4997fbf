"""The training loop. Defaults live in `TrainConfig`; `train()` reads top to bottom."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt_io
from .backends import BACKEND_NAMES, get_backend
from .checks import MAX_SEED
from .corpus import Corpus, load_corpus
from .data import VOCAB_KINDS, BatchStream, CorpusError, check_ids, evaluation_positions, evaluation_streams
from .dropout import Dropout
from .errors import UsageError
from .fileio import check_writable, lock_directory, make_directory, remove_file
from .layout import layers_in, state_shape
from .metrics import MetricsLog
from .model import CharRNN
from .optim import DEFAULT_LR, OPTIMIZERS, clip_elementwise, clip_global_norm, make_optimizer
from .parallel import SingleCommunicator
from .prepare import as_specs
from .progress import progress as progress_display
from .schedule import SCHEDULES, LRSchedule
from .settings import NOT_GIVEN, declared, owned_by, problem, setting
from .tuning_cache import load_kernel_choices, save_kernel_choices
from .words import DEFAULT_VOCAB_SIZE, MAX_VOCAB_SIZE

# What travels with the gradients in the one all-reduce of a step, after them in the same buffer.
EXCHANGED = ("loss",)
# Signals that end a run, its checkpoint written; the first listed wins if several came.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# What the ranks agree on over the host, one step late: what step n raises stops every rank after step n + 1.
FLAGS = (*(s.name.lower() for s in STOP_SIGNALS), "time_up")
MAX_PARAMETER_BYTES = 64 << 30  # more is a typo, not a plan


def parameter_bytes(hidden: int, layers: int, dtype: str, vocab: int = 256) -> int:
    """Parameters, gradients and two optimiser slots, at a vocabulary of `vocab`."""
    count = layers * (2 * hidden * hidden + hidden) + 2 * vocab * hidden
    return 4 * count * (8 if dtype == "float64" else 4)


DEFAULT_STEPS = 2000  # a run's length when neither steps nor time is given
COUNT = 10**9  # the most steps (of a run, between evaluations, ...) a setting takes


@dataclass
class TrainConfig:
    """Every training setting, declared once (rnn_gpu/settings.py): the
    command line's flags, the checks and the resume rules follow from here."""
    hidden: int = setting(256, int, "model", "units per layer", low=1, high=16384)
    layers: int = setting(1, int, "model", "stacked tanh layers", low=1, high=64)
    batch: int = setting(32, int, "model", "streams per step, over all processes of an MPI job", low=1, high=65536)
    seq: int = setting(64, int, "model", "time steps per window", low=1, high=100000)
    # steps and time: None is no bound (the other one is then needed); not given, see `run_length`
    steps: int | None = setting(NOT_GIVEN, int, "run", "total steps of the run (a resumed run counts from its start)",
                                low=1, high=COUNT, absent=f"{DEFAULT_STEPS} unless --time; with --resume, the "
                                "checkpoint's")
    time: float | None = setting(NOT_GIVEN, float, "run", "total seconds of training of the run (a resumed run "
                                 "counts on)", low=0, high=10**7, low_inclusive=False,
                                 absent="no limit; with --resume, the checkpoint's", metavar="SECONDS")
    optimizer: str = setting("adam", str, "model", "adam (lr 0.002), or adagrad (lr 0.1, the seed's), which suits "
                             "small models", choices=OPTIMIZERS)
    lr: float | None = setting(None, float, "model", "the base learning rate", low=0, high=10, low_inclusive=False,
                               absent="adagrad 0.1, adam 0.002")
    lr_schedule: str = setting("cosine", str, "model", "cosine decays to --min-lr over the run's --steps or --time, "
                               "whichever is further; constant keeps --lr", choices=SCHEDULES)
    warmup: int = setting(0, int, "model", "steps of linear warm-up", low=0, high=COUNT)
    min_lr: float | None = setting(None, float, "model", "where the cosine ends", low=0, high=10,
                                   absent="--lr / 10")
    clip: float = setting(5.0, float, "model", "element-wise gradient clip", low=0, high=10**6, low_inclusive=False)
    clip_norm: float | None = setting(None, float, "model", "also clip the global norm", low=0, high=10**6,
                                      low_inclusive=False, absent="not")
    dropout: float = setting(0.0, float, "model", "dropout on the inputs of layers 2..L and of the output layer",
                             low=0, high=0.95)
    vocab: str | None = setting(None, str, "model", "the symbols", choices=VOCAB_KINDS,
                                absent="chars; a prepared corpus keeps its own")
    vocab_size: int | None = setting(None, int, "model", "--vocab words only: the unknown token and the N-1 most "
                                     "frequent tokens", low=2, high=MAX_VOCAB_SIZE, absent=str(DEFAULT_VOCAB_SIZE))
    val_fraction: float = setting(0.1, float, "model", "the end of the corpus held out for validation (0: none)",
                                  low=0, high=0.9)
    val_chars: int = setting(1_000_000, int, "model", "evaluate on at most this many held-out characters, the same "
                             "evenly spaced windows every time (0: all of them)", low=0, high=10**12)
    include: tuple = setting((), tuple, "model", "of a directory's files, read only those matching (repeatable; "
                             "default all)", metavar="GLOB")
    exclude: tuple = setting((), tuple, "model", "of a directory's files, skip those matching (repeatable); hidden "
                             "files are always skipped", metavar="GLOB")
    eval_every: int = setting(200, int, "run", "steps between validations", low=1, high=COUNT)
    checkpoint_every: int = setting(500, int, "run", "steps between checkpoints", low=1, high=COUNT)
    log_every: int = setting(10, int, "run", "steps between metrics records", low=1, high=COUNT)
    backend: str = setting("auto", str, "run", "auto: CuPy where a CUDA GPU is usable, else NumPy",
                           choices=BACKEND_NAMES)
    dtype: str = setting("float32", str, "model", "the parameters' and activations' type",
                         choices=("float32", "float64"))
    seed: int = setting(0, int, "model", "initialisation and dropout", low=0, high=MAX_SEED)
    skip_nonfinite: bool = setting(False, bool, "run", "skip steps with a non-finite loss or gradient instead of "
                                   "stopping")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def validate(self) -> None:
        """The checks the CLI's flags make, for configurations built in Python
        or read back from a checkpoint: a UsageError that names the setting."""
        try:
            self._check()
            self.schedule()
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad training setting: {exc}") from None

    def _check(self) -> None:
        for name, field in declared(self).items():
            message = problem(field, getattr(self, name))
            if message:
                raise UsageError(message)
        length = self.run_length()
        if length.steps is None and length.time is None:
            raise UsageError("give steps or time (or both)")
        if self.min_lr is not None and self.min_lr > self.learning_rate:
            raise UsageError(f"min_lr must be between 0 and the learning rate {self.learning_rate}")
        if self.vocab_size is not None and self.vocab != "words":
            raise UsageError("vocab_size goes with vocab words")
        need = parameter_bytes(self.hidden, self.layers, self.dtype, self.vocab_size or 256)
        if need > MAX_PARAMETER_BYTES:
            raise UsageError(f"hidden {self.hidden} x layers {self.layers} needs about {need / 2**30:.0f} GiB for "
                             "the parameters, gradients and optimiser state; use smaller sizes")

    def schedule(self) -> LRSchedule:
        length = self.run_length()
        return LRSchedule(self.learning_rate, self.lr_schedule, self.warmup, self.min_lr, length.steps, length.time)

    def run_length(self, saved: dict | None = None) -> TrainConfig:
        """This configuration with its steps and time settled: as given (the
        other one, not given, unbounded); where neither was given, a resumed
        run's own (`saved`, its checkpoint's configuration) or DEFAULT_STEPS."""
        steps, seconds = self.steps, self.time
        if steps is NOT_GIVEN and seconds is NOT_GIVEN and saved is not None:
            steps, seconds = saved.get("steps"), saved.get("time")
            if steps is None and seconds is None:
                steps = NOT_GIVEN
        seconds = None if seconds is NOT_GIVEN else seconds
        if steps is NOT_GIVEN:
            steps = DEFAULT_STEPS if seconds is None else None
        return dataclasses.replace(self, steps=steps, time=seconds)


# What a resumed run takes from its checkpoint rather than from the command line.
MODEL_FIELDS = owned_by(TrainConfig, "model")


class Interrupted(Exception):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived; the step finished and a checkpoint was written."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} after step {step}; checkpoint written")
        self.signum, self.step = signum, step


class Diverged(FloatingPointError):
    """A non-finite loss or gradient; the last good checkpoint is kept."""


class StopSignals:
    """While active, the stop signals only record that they came."""

    def __enter__(self):
        self.received = None
        self.previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}
        return self

    def _record(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


@dataclass
class Evaluation:
    loss: float  # mean NLL per symbol predicted (nats)
    symbols: int  # symbols predicted
    loss_per_char: float  # the summed NLL over the characters of the original text those symbols cover
    chars: int


def evaluate(model: CharRNN, data, batch: int, seq: int, max_chars: int | None = None,
             comm=None, symbol_chars=None) -> Evaluation:
    """Mean NLL (nats) over the windows of `evaluation_windows` (all of
    `data`, or at most `max_chars` symbols of it), the hidden state carried
    across windows, per symbol and per character: `symbol_chars` indexed as
    `data` gives the characters each symbol covers (data.SymbolChars; None:
    one each). With a communicator, each rank takes its share of the
    streams and the sums are reduced."""
    comm = comm or SingleCommunicator()
    n_streams = evaluation_streams(len(data), batch, seq, max_chars)[0]
    mine = slice(comm.rank * n_streams // comm.size, (comm.rank + 1) * n_streams // comm.size)
    sums, h = np.zeros(3), None  # loss * symbols, symbols, characters
    for where in evaluation_positions(len(data), batch, seq, max_chars):
        window, targets = data[where[:, mine]], where[1:, mine]
        if window.shape[1] == 0:
            break
        check_ids(window, model.vocab_size, where[:, mine], "validation")  # this rank's streams
        if h is None:
            h = model.zero_state(window.shape[1])
        loss, h = model.loss(window[:-1], window[1:], h)
        chars = targets.size if symbol_chars is None else int(symbol_chars[targets.reshape(-1)].sum())
        sums += (loss * targets.size, targets.size, chars)
    comm.allreduce_sum_(sums)
    return Evaluation(float(sums[0] / sums[1]), int(sums[1]), float(sums[0] / max(sums[2], 1)), int(sums[2]))


def check_corpus_fits(corpus: Corpus, cfg: TrainConfig) -> None:
    BatchStream(corpus.train, cfg.batch, cfg.seq)  # raises CorpusError if too short
    if cfg.val_fraction > 0 and len(corpus.val) < 2:
        raise CorpusError(
            f"validation part has {len(corpus.val)} symbols; raise --val-fraction or pass --val-fraction 0"
        )


def resumed_config(cfg: TrainConfig, saved: ckpt_io.Checkpoint) -> TrainConfig:
    """The checkpoint's model and data settings with this run's length and cadence."""
    try:
        settings = {k: saved.config[k] for k in MODEL_FIELDS if k in saved.config}
        settings.update(hidden=saved.params["W"].shape[0], layers=layers_in(saved.params),
                        include=tuple(settings.get("include", cfg.include)),
                        exclude=tuple(settings.get("exclude", cfg.exclude)))
        resumed = dataclasses.replace(cfg.run_length(saved.config), **settings)  # the run's own length unless given
        resumed.validate()
    except (TypeError, KeyError, ValueError, UsageError) as exc:
        raise ckpt_io.CheckpointError(f"cannot resume: damaged configuration in the checkpoint ({exc})") from None
    if saved.h is None or saved.h.shape != state_shape(resumed.layers, resumed.batch, resumed.hidden):
        raise ckpt_io.CheckpointError("cannot resume: the checkpoint's hidden state does not match its batch, "
                                      "layers and hidden size")
    return resumed


def device_ids(backend, ids):
    """The encoded training text on the device when it fits comfortably (1 or
    2 bytes a character), else on the host, from where windows are copied."""
    if backend.xp is np:
        return ids, np
    free, _ = backend.xp.cuda.runtime.memGetInfo()
    if ids.nbytes < free // 4:
        return backend.asarray(ids), backend.xp
    return ids, np


def rank_streams(batch: int, comm) -> slice:
    """The streams rank r owns: [r*B/N, (r+1)*B/N) of the same B-stream layout."""
    if batch % comm.size:
        raise UsageError(f"--batch {batch} is not divisible by the {comm.size} processes of this job")
    share = batch // comm.size
    return slice(comm.rank * share, (comm.rank + 1) * share)


@dataclass
class StepResult:
    loss: object  # the mean over all ranks: a one-element device array, valid until the next step
    lr: float
    ok: object  # a one-element device flag: the update was applied (the gradients were finite)
    allreduce_s: float


class Trainer:
    """Model, optimiser, data position and hidden state: what a checkpoint
    saves. Each rank holds its own streams' states; everything else is the
    same on every rank."""

    def __init__(self, cfg: TrainConfig, corpus: Corpus, backend, saved: ckpt_io.Checkpoint | None, corpus_path,
                 comm):
        self.cfg, self.corpus, self.backend, self.comm = cfg, corpus, backend, comm
        self.corpus_path = None if corpus_path is None else [str(Path(s).resolve()) for s in as_specs(corpus_path)]
        self.streams = rank_streams(cfg.batch, comm)
        self.local_batch = self.streams.stop - self.streams.start
        params = saved.params if saved else None
        self.model = CharRNN(len(corpus.vocab), cfg.hidden, backend, dtype=cfg.dtype, seed=cfg.seed, params=params,
                             layers=cfg.layers, reserve=len(EXCHANGED))
        self.optimizer = make_optimizer(cfg.optimizer, self.model, cfg.learning_rate)
        self.schedule = cfg.schedule()
        ids, xp = device_ids(backend, corpus.train)
        self.stream = BatchStream(ids, cfg.batch, cfg.seq, position=saved.position if saved else 0, xp=xp,
                                  streams=self.streams, vocab_size=len(corpus.vocab))
        self.h = self.model.zero_state(self.local_batch)
        self.step, self.best_val_loss, self.elapsed_before = 0, None, 0.0
        self.saved_step = None  # the step of the last checkpoint.npz written
        # Non-finite steps of this run, counted on the device (backend.step_health_): read when needed.
        self.health = backend.xp.zeros(3, dtype=np.int64)
        self.flags = None  # the stop flags' exchange in flight (comm.start_allreduce_max)
        backend.keep_kernel_choices(load_kernel_choices())  # earlier runs' launch plans on this device
        self.cached_choices = None  # the kernel choices last written to the cache directory
        if saved:
            try:
                self.optimizer.load_state_dict(saved.optimizer_state, backend.asarray)
                backend.keep_threads_chosen(saved.cpu_threads)
                backend.keep_kernel_choices(saved.kernel_choices)  # the run's own, over the cache's
            except (ValueError, TypeError, KeyError) as exc:
                raise ckpt_io.CheckpointError(f"cannot resume: {exc}") from None
            self.h = backend.asarray(saved.h[..., self.streams, :], dtype=cfg.dtype)
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
        loss, _, h = model.loss_and_grads_on_device(window[:-1], window[1:], self.h, self.dropout(self.step + 1))
        be.xp.copyto(model.grad_extra[:1], loss)  # on the device: no host read
        start = time.perf_counter()
        self.comm.allreduce_mean_(model.grad_buffer)
        allreduce_s = time.perf_counter() - start
        loss = model.grad_extra[:1]
        ok = be.step_health_(model.grad_buffer, loss, self.health, self.step + 1)
        if cfg.clip_norm is None:
            self.optimizer.step(model.flat, model.grad_flat, clip=cfg.clip, ok=ok)
        else:  # element-wise first, then the global norm of what is left
            clip_elementwise(model.grad_flat, cfg.clip, be.xp)
            clip_global_norm(model.grad_flat, cfg.clip_norm, be.xp)
            self.optimizer.step(model.flat, model.grad_flat, ok=ok)
        # A skipped step starts its streams afresh (only --skip-nonfinite runs on past one).
        self.h = be.xp.where(ok, h, 0) if cfg.skip_nonfinite else h
        return StepResult(loss, lr, ok, allreduce_s)

    def stop_flags(self, signal_received: int | None, elapsed: float) -> list:
        """This rank's FLAGS after a step: a stop signal came, the run's time is up."""
        return [*(signal_received == s for s in STOP_SIGNALS), self.cfg.time is not None and elapsed >= self.cfg.time]

    def exchange_flags(self, flags=None) -> tuple[int | None, bool]:
        """Sends a step's host flags (`stop_flags`; None at the end) and
        returns the ones every rank sent at the step before: (the stop signal
        that came, if any; the time is up). They travel while the next step
        runs, so what any rank raises after step n stops every rank after
        step n + 1."""
        pending = self.flags
        self.flags = None if flags is None else self.comm.start_allreduce_max(np.array(flags, dtype=np.int32))
        if pending is None:
            return None, False
        *came, time_up = pending.wait()
        return next((s for s, flag in zip(STOP_SIGNALS, came, strict=True) if flag), None), bool(time_up)

    def read_loss(self, result: StepResult) -> float:
        """The step's mean loss on the host: waits for the device."""
        return float(self.backend.to_host(result.loss)[0])

    def read_health(self) -> int:
        """The steps skipped so far as not finite: waits for the device. Without
        --skip-nonfinite, any such step ends the run (Diverged) at this read,
        on every rank alike, before anything else is written."""
        skipped, first, loss_bad = (int(v) for v in self.backend.to_host(self.health))
        if skipped and not self.cfg.skip_nonfinite:
            self.exchange_flags()  # every rank stops here: complete the exchange in flight
            raise Diverged(f"non-finite {'loss' if loss_bad else 'gradient'} at step {first}")
        return skipped

    def dropout(self, step: int) -> Dropout | None:
        """The masks of training step `step` (counting from 1) for this
        rank's streams: a function of the seed and the step alone, so a
        resumed run needs nothing more and every rank split draws the same."""
        return Dropout(self.cfg.dropout, self.cfg.seed, step, self.streams.start) if self.cfg.dropout else None

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


def prepare_run(cfg: TrainConfig, corpus_path, out: Path, resume: bool, comm, given=frozenset()) -> Trainer:
    """This rank's trainer, from a checkpoint when resuming (its settings win)."""
    saved = ckpt_io.load_checkpoint(out / ckpt_io.FILENAME) if resume else None
    if saved:
        fixed = sorted(f for f in given if f in MODEL_FIELDS and f in saved.config)
        if fixed and comm.master_process:
            print(f"resume: the checkpoint fixes {', '.join('--' + f.replace('_', '-') for f in fixed)}; "
                  "ignored what was given", file=sys.stderr, flush=True)
        cfg = resumed_config(cfg, saved)
        corpus_path = corpus_path if corpus_path is not None else saved.config.get("corpus")
        if cfg.steps is not None and saved.step >= cfg.steps:
            raise ckpt_io.CheckpointError(f"{out} is already at step {saved.step}; pass a larger --steps to continue")
        if cfg.time is not None and saved.elapsed_s >= cfg.time:
            raise ckpt_io.CheckpointError(f"{out} has already trained {saved.elapsed_s:.0f} s; pass a larger --time "
                                          "to continue")
    else:
        cfg = cfg.run_length()
    rank_streams(cfg.batch, comm)
    backend = get_backend(cfg.backend)
    comm.use_local_device(backend)
    corpus = load_corpus(corpus_path, cfg.vocab, cfg.val_fraction, spare_cache=out.parent / ".rnn_gpu-cache",
                         include=cfg.include, exclude=cfg.exclude, vocab_size=cfg.vocab_size)
    check_corpus_fits(corpus, cfg)
    if saved and saved.vocab != corpus.vocab:
        raise CorpusError(f"the corpus's vocabulary differs from the checkpoint's in {out}")
    return Trainer(cfg, corpus, backend, saved, corpus_path, comm)


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


def describe_run(cfg: TrainConfig, trainer: Trainer, corpus: Corpus, resumed: bool, stream=None) -> None:
    """What the run is, before its first step (stderr)."""
    stream = stream or sys.stderr
    model, be = trainer.model, trainer.backend
    n_params = sum(int(np.prod(v.shape)) for v in model.params.values())
    total = len(corpus.train) + len(corpus.val)
    lines = [
        f"corpus: {corpus.source}",
        f"  {total:,} symbols: {len(corpus.train):,} for training, {len(corpus.val):,} held out "
        f"(--val-fraction {cfg.val_fraction}; each evaluation reads "
        f"{'all of them' if not cfg.val_chars or cfg.val_chars >= len(corpus.val) else f'{cfg.val_chars:,}'})",
        f"vocabulary: {len(corpus.vocab)} symbols ({corpus.vocab.kind})",
        f"model: {model.layers} layer{'s' if model.layers > 1 else ''} of {model.hidden_size} units, "
        f"{n_params:,} parameters, dropout {cfg.dropout}",
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


def set_up(cfg: TrainConfig, corpus_path, out: Path, resume: bool, comm, given) -> tuple:
    """Every rank's trainer, and rank 0's metrics log: each phase runs, then
    every rank agrees it went well or all stop with one error. Rank 0 goes
    first, so that a raw corpus is prepared into the cache once."""
    made = {}

    def phase(on_these, what, *args):
        error = None
        try:
            if on_these:
                made[what.__name__] = what(*args)
        except Exception as exc:
            error = exc
        comm.agree(error)

    phase(comm.master_process, prepare_run, cfg, corpus_path, out, resume, comm, given)
    phase(not comm.master_process, prepare_run, cfg, corpus_path, out, resume, comm, given)
    resume_step = made["prepare_run"].step if resume else None  # every rank has its trainer by now
    phase(comm.master_process, open_metrics, out, resume_step, comm)
    return made["prepare_run"], made.get("open_metrics")


@dataclass
class Interval:
    """Training time (evaluation excluded), characters and all-reduce time since the last record."""
    seconds: float = 0.0
    chars: int = 0
    allreduce_s: float = 0.0

    def record(self, comm) -> dict:
        rates = {"chars_per_s": self.chars / max(self.seconds, 1e-9)}
        if comm.size > 1:
            rates.update(world_size=comm.size, allreduce_share=self.allreduce_s / max(self.seconds, 1e-9))
        return rates


def train(cfg: TrainConfig, corpus_path, out: Path, progress: bool = True, resume: bool = False,
          comm=None, given=frozenset()) -> dict:
    """Trains per `cfg` on the corpus (None: the embedded default), writing
    DIR/metrics.jsonl, DIR/checkpoint.npz (the latest) and DIR/best.npz (the
    best validation loss). With `resume`, continues DIR/checkpoint.npz
    exactly: `cfg.steps` and `cfg.time` count from the start of the run.
    With a communicator of N ranks, the B streams are split among them and
    rank 0 alone writes and reports. Returns the final metrics record."""
    comm = comm or SingleCommunicator()
    comm.set_cpu_threads()
    trainer, metrics = set_up(cfg, corpus_path, out, resume, comm, given)
    try:
        comm.set_up_exchange(trainer.backend)  # collective: how gradients travel, for the run's description
        return run_steps(trainer, metrics, out, progress and comm.master_process, resume, comm)
    except BaseException:
        if metrics and metrics.made_directory and not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave no empty run directory behind
        raise
    finally:
        if metrics:
            metrics.close()  # and the run directory's lock


def run_steps(trainer: Trainer, metrics: MetricsLog | None, out: Path, progress: bool, resumed: bool, comm) -> dict:
    """The training loop of `train`: steps, logging, evaluation and
    checkpoints until the run's steps or time are done or a signal comes."""
    cfg, corpus = trainer.cfg, trainer.corpus
    val_streams = evaluation_streams(len(corpus.val), cfg.batch, cfg.seq, cfg.val_chars)[0]
    if progress:
        describe_run(cfg, trainer, corpus, resumed=resumed)
    bar = progress_display(cfg.steps, trainer.step, progress)
    start = time.perf_counter() - trainer.elapsed_before  # elapsed time counts on across a resume
    interval, skipped, val, record = Interval(), 0, None, {}
    try:
        with StopSignals() as signals:
            while True:
                step_start = time.perf_counter()
                result = trainer.train_step(step_start - start)
                trainer.step += 1
                step = trainer.step
                stop_signal, time_up = trainer.exchange_flags(trainer.stop_flags(signals.received,
                                                                                 step_start - start))
                last = (cfg.steps is not None and step >= cfg.steps) or time_up
                evaluate_now = cfg.val_fraction > 0 and (step % cfg.eval_every == 0 or last)
                log_now = step % cfg.log_every == 0 or evaluate_now or last
                checkpoint_now = step % cfg.checkpoint_every == 0 or last or stop_signal
                if last or stop_signal:  # complete the exchange in flight; a signal during the final step counts
                    came, _ = trainer.exchange_flags()
                    stop_signal = stop_signal or came
                if log_now or checkpoint_now:  # the host waits for the device here, and only here
                    skipped = trainer.read_health()
                    loss = trainer.read_loss(result)
                interval.chars += trainer.stream.symbols_per_step
                interval.seconds += time.perf_counter() - step_start
                interval.allreduce_s += result.allreduce_s

                elapsed = time.perf_counter() - start
                improved = False
                if evaluate_now:
                    bar.set_description_str("evaluating", refresh=True)
                    val = evaluate(trainer.model, corpus.val, cfg.batch, cfg.seq, cfg.val_chars, comm,
                                   corpus.val_symbol_chars)
                    bar.set_description_str("", refresh=False)
                    improved = trainer.best_val_loss is None or val.loss < trainer.best_val_loss
                    if improved:
                        trainer.best_val_loss = val.loss
                if log_now:
                    record = {"step": step, "train_loss": loss, "lr": result.lr,
                              "chars": step * trainer.stream.symbols_per_step, **interval.record(comm),
                              "elapsed_s": elapsed}
                    if evaluate_now:
                        record.update(val_loss=val.loss, val_chars=val.symbols, val_streams=val_streams,
                                      val_part_chars=len(corpus.val), val_loss_per_char=val.loss_per_char,
                                      val_text_chars=val.chars)
                    if skipped:
                        record["skipped_steps"] = skipped
                    if metrics:
                        metrics.write(**record)
                    interval = Interval()
                    bar.set_postfix(loss=f"{loss:.3f}", val="-" if val is None else f"{val.loss:.3f}",
                                    val_per_char="-" if val is None else f"{val.loss_per_char:.3f}",
                                    lr=f"{result.lr:.2g}", cps=f"{record['chars_per_s']:.0f}")
                if improved:  # after the step's record: a kill in between repeats the step, never loses its line
                    # The latest first: whatever a full disk stops, --resume finds a checkpoint.
                    trainer.checkpoint(out / ckpt_io.FILENAME, elapsed)
                    trainer.checkpoint(out / ckpt_io.BEST_FILENAME, elapsed)
                bar.update(1)
                if checkpoint_now and trainer.saved_step != step:
                    trainer.checkpoint(out / ckpt_io.FILENAME, elapsed)
                if stop_signal:
                    raise Interrupted(stop_signal, step)
                if last:
                    break
    finally:
        bar.close()
    return record
