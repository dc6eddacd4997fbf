"""The training loop. `train()` sets a run up and `run_steps()` is the loop
itself, one step at a time in the order it happens: step -> flags ->
evaluate -> log -> checkpoint -> stop. Defaults live in `TrainConfig`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt_io
from ..data.streams import evaluation_positions, evaluation_streams
from ..errors import Interrupted
from ..inspection.measures import SATURATED, largest_singular_value
from ..layout import layer_names
from ..parallel import SingleCommunicator
from .config import TrainConfig
from .evaluation import Evaluation, evaluate
from .metrics import MetricsLog
from .progress import progress as progress_display
from .run_dir import describe_run
from .setup import set_up
from .stopping import StopSignals
from .trainer import StepResult, Trainer


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
        shown = progress and comm.master_process
        if shown:
            describe_run(trainer.cfg, trainer, trainer.corpus, resumed=resume)
        run = Run(trainer, metrics, out, progress_display(trainer.cfg.steps, trainer.step, shown))
        try:
            return run_steps(run)
        finally:
            run.bar.close()
    except BaseException:
        if metrics and metrics.made_directory and not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave no empty run directory behind
        raise
    finally:
        if metrics:
            metrics.close()  # and the run directory's lock


def run_steps(run: Run) -> dict:
    """Steps until the run's steps or time are done or a stop signal comes;
    returns the last metrics record."""
    trainer, cfg = run.trainer, run.trainer.cfg
    loss = skipped = None
    with StopSignals() as signals:
        while True:
            step_start = time.perf_counter()
            result = trainer.train_step(step_start - run.start)
            trainer.step += 1
            step = trainer.step
            stop_signal, time_up = trainer.exchange_flags(signals.received, step_start - run.start)
            last = (cfg.steps is not None and step >= cfg.steps) or time_up
            due = run.due(step, last, stop_signal)
            if last or stop_signal:  # complete the exchange in flight; a signal during the final step counts
                stop_signal = stop_signal or trainer.flags()[0]
            if due.log or due.checkpoint:  # the host waits for the device here, and only here
                skipped, loss = trainer.read_health(), trainer.read_loss(result)
            run.interval.add(time.perf_counter() - step_start, trainer.stream.symbols_per_step, result.allreduce_s)

            elapsed = time.perf_counter() - run.start
            improved = due.evaluate and run.evaluate()
            if due.log:
                run.log(result, loss, skipped, elapsed, due.evaluate)
            if improved:  # after the step's record: a kill in between repeats the step, never loses its line
                run.save_best(elapsed)
            run.bar.update(1)
            if due.checkpoint and trainer.saved_step != step:
                trainer.checkpoint(run.out / ckpt_io.FILENAME, elapsed)
            if stop_signal:
                raise Interrupted(stop_signal, step)
            if last:
                return run.record


@dataclass
class Due:
    """What a step does after it ran."""
    evaluate: bool
    log: bool
    checkpoint: bool


@dataclass
class Interval:
    """Training time (evaluation excluded), symbols and all-reduce time since the last record."""
    seconds: float = 0.0
    symbols: int = 0
    allreduce_s: float = 0.0

    def add(self, seconds: float, symbols: int, allreduce_s: float) -> None:
        self.seconds += seconds
        self.symbols += symbols
        self.allreduce_s += allreduce_s

    def rates(self, comm) -> dict:
        rates = {"symbols_per_s": self.symbols / max(self.seconds, 1e-9)}
        if comm.size > 1:
            rates.update(world_size=comm.size, allreduce_share=self.allreduce_s / max(self.seconds, 1e-9))
        return rates


@dataclass
class Run:
    """What the loop keeps between steps, and each of its phases."""
    trainer: Trainer
    metrics: MetricsLog | None  # rank 0's
    out: Path
    bar: object  # progress.progress
    interval: Interval = field(default_factory=Interval)
    val: Evaluation | None = None  # the latest
    record: dict = field(default_factory=dict)  # the latest

    def __post_init__(self):
        cfg, val = self.trainer.cfg, self.trainer.corpus.val
        self.start = time.perf_counter() - self.trainer.elapsed_before  # elapsed time counts on across a resume
        self.val_streams = evaluation_streams(len(val), cfg.batch, cfg.seq, cfg.val_chars)[0]

    def due(self, step: int, last: bool, stop_signal) -> Due:
        cfg = self.trainer.cfg
        evaluate_now = cfg.val_fraction > 0 and (step % cfg.eval_every == 0 or last)
        return Due(evaluate=evaluate_now, log=step % cfg.log_every == 0 or evaluate_now or last,
                   checkpoint=step % cfg.checkpoint_every == 0 or last or bool(stop_signal))

    def evaluate(self) -> bool:
        """Validates the model now (collective); whether it is the run's best yet."""
        trainer, cfg, corpus = self.trainer, self.trainer.cfg, self.trainer.corpus
        self.bar.set_description_str("evaluating", refresh=True)
        self.val = evaluate(trainer.model, corpus.val, cfg.batch, cfg.seq, cfg.val_chars, trainer.comm,
                            corpus.val_symbol_chars, corpus.data_file)
        self.bar.set_description_str("", refresh=False)
        improved = trainer.best_val_loss is None or self.val.loss < trainer.best_val_loss
        if improved:
            trainer.best_val_loss = self.val.loss
        return improved

    def log(self, result: StepResult, loss: float, skipped: int, elapsed: float, evaluated: bool) -> None:
        """The step's metrics record (rank 0 writes it) and progress line."""
        trainer, val = self.trainer, self.val
        record = {"step": trainer.step, "train_loss": loss, "lr": result.lr,
                  "symbols": trainer.step * trainer.stream.symbols_per_step, **self.interval.rates(trainer.comm),
                  "elapsed_s": elapsed}
        if evaluated:
            record.update(val_loss=val.loss, val_symbols=val.symbols, val_streams=self.val_streams,
                          val_part_symbols=len(trainer.corpus.val), val_loss_per_char=val.loss_per_char,
                          val_chars=val.chars)
            if self.metrics:  # rank 0's record
                record.update(self.recurrence_measures())
        if skipped:
            record["skipped_steps"] = skipped
        if self.metrics:
            self.metrics.write(**record)
        self.record, self.interval = record, Interval()
        self.bar.set_postfix(loss=f"{loss:.3f}", val="-" if val is None else f"{val.loss:.3f}",
                             val_per_char="-" if val is None else f"{val.loss_per_char:.3f}",
                             lr=f"{result.lr:.2g}", sps=f"{record['symbols_per_s']:.0f}")

    def recurrence_measures(self) -> dict:
        """Per layer, layer 1 first: `W_sigma_max`, the largest singular value
        of its W (of a host copy), and `saturation`, the fraction of its units
        with |h| > 0.99 on the first validation window (every stream, from a
        zero state): one forward pass, no loss."""
        trainer, cfg = self.trainer, self.trainer.cfg
        model, be = trainer.model, trainer.backend
        sigma = [largest_singular_value(be.to_host(model.params[layer_names(k)[1]]))
                 for k in range(1, model.layers + 1)]
        where = next(evaluation_positions(len(trainer.corpus.val), cfg.batch, cfg.seq, cfg.val_chars))
        inputs = be.asarray(np.asarray(trainer.corpus.val[where[:-1]]), dtype=np.int64)
        h0 = be.xp.zeros((model.layers, inputs.shape[1], model.hidden_size), dtype=model.dtype)
        layers, _, _ = model._forward(inputs, h0, None)
        saturation = [float(be.to_host(be.xp.count_nonzero(be.xp.abs(Hs) > SATURATED))) / Hs.size
                      for _, Hs in layers]
        return {"W_sigma_max": sigma, "saturation": saturation}

    def save_best(self, elapsed: float) -> None:
        """The latest checkpoint first: whatever a full disk stops, --resume finds one."""
        self.trainer.checkpoint(self.out / ckpt_io.FILENAME, elapsed)
        self.trainer.checkpoint(self.out / ckpt_io.BEST_FILENAME, elapsed)
