"""A run's start, on every rank: its configuration settled (a resumed
run's from its checkpoint), its backend, corpus and trainer made, rank 0's
run directory opened; each phase agreed on by every rank."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from .. import checkpoint as ckpt_io
from ..backends import get_backend
from ..data.corpus import Corpus, load_corpus
from ..data.streams import BatchStream
from ..errors import CheckpointError, CorpusError, UsageError
from ..export import initial_weights as read_weights
from ..layout import layers_in, state_shape
from ..settings import declared
from .config import MODEL_FIELDS, TrainConfig
from .run_dir import open_metrics
from .trainer import Trainer, rank_streams


def check_corpus_fits(corpus: Corpus, cfg: TrainConfig) -> None:
    BatchStream(corpus.train, cfg.batch, cfg.seq)  # raises CorpusError if too short
    if cfg.val_fraction > 0 and len(corpus.val) < 2:
        raise CorpusError(
            f"validation part has {len(corpus.val)} symbols; raise val_fraction= or pass val_fraction=0"
        )


def resumed_config(cfg: TrainConfig, saved: ckpt_io.Checkpoint) -> TrainConfig:
    """The checkpoint's model and data settings with this run's length and cadence."""
    try:
        # A setting the checkpoint predates was off (its declared default) when the run trained.
        defaults = {k: f.default for k, f in declared(TrainConfig).items()}
        settings = {k: saved.config[k] if k in saved.config else defaults[k] for k in MODEL_FIELDS}
        settings.update(hidden=saved.params["W"].shape[0], layers=layers_in(saved.params),
                        include=tuple(settings.get("include", cfg.include)),
                        exclude=tuple(settings.get("exclude", cfg.exclude)))
        resumed = dataclasses.replace(cfg.run_length(saved.config), **settings)  # the run's own length unless given
        resumed.validate()
    except (TypeError, KeyError, ValueError, UsageError) as exc:
        raise CheckpointError(f"cannot resume: damaged configuration in the checkpoint ({exc})") from None
    if saved.h is None or saved.h.shape != state_shape(resumed.layers, resumed.batch, resumed.hidden):
        raise CheckpointError("cannot resume: the checkpoint's hidden state does not match its batch, "
                                      "layers and hidden size")
    return resumed


def make_trainer(cfg: TrainConfig, corpus_path, out: Path, resume: bool, comm, given=frozenset()) -> Trainer:
    """This rank's trainer, from a checkpoint when resuming (its settings win)."""
    saved = ckpt_io.load_checkpoint(out / ckpt_io.FILENAME) if resume else None
    if saved:
        fixed = sorted(f for f in given if f in MODEL_FIELDS)
        if fixed and comm.master_process:
            print(f"resume: the checkpoint fixes {', '.join('--' + f.replace('_', '-') for f in fixed)}; "
                  "ignored what was given", file=sys.stderr, flush=True)
        cfg = resumed_config(cfg, saved)
        corpus_path = corpus_path if corpus_path is not None else saved.config.get("corpus")
        if cfg.steps is not None and saved.step >= cfg.steps:
            raise CheckpointError(f"{out} is already at step {saved.step}; pass a larger steps= to continue")
        if cfg.time is not None and saved.elapsed_s >= cfg.time:
            raise CheckpointError(f"{out} has already trained {saved.elapsed_s:.0f} s; pass a larger time= "
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
    initial = initial_weights(cfg, corpus) if cfg.init_from and not saved else None
    return Trainer(cfg, corpus, backend, saved, corpus_path, comm, initial)


def initial_weights(cfg: TrainConfig, corpus: Corpus) -> dict:
    """A new run's starting weights from cfg.init_from, of the configured sizes."""
    params = read_weights(cfg.init_from, corpus.vocab)
    hidden, layers = params["W"].shape[0], layers_in(params)
    if (hidden, layers) != (cfg.hidden, cfg.layers):
        raise UsageError(f"init_from={cfg.init_from} is a model of {layers} layer(s) of {hidden} units; pass "
                         f"hidden={hidden} layers={layers}")
    return params


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

    phase(comm.master_process, make_trainer, cfg, corpus_path, out, resume, comm, given)
    phase(not comm.master_process, make_trainer, cfg, corpus_path, out, resume, comm, given)
    resume_step = made["make_trainer"].step if resume else None  # every rank has its trainer by now
    phase(comm.master_process, open_metrics, out, resume_step, comm)
    return made["make_trainer"], made.get("open_metrics")
