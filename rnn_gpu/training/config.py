"""The run's configuration: every training setting declared once
(rnn_gpu/settings.py), from which the command line's flags, the checks of a
value given in Python or read from a checkpoint, and the resume rules follow;
and the bounds on what a configuration may ask of memory."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..backends import BACKEND_NAMES
from ..checks import MAX_SEED, python_value
from ..data.vocab import VOCAB_KINDS, VOCAB_SIZE_ABSENT, VOCAB_SIZE_HELP, VOCAB_SIZES, check_vocab_size
from ..errors import UsageError
from ..layout import MAX_HIDDEN, MAX_LAYERS, MAX_PARAMETER_BYTES, parameter_bytes
from ..optim import DEFAULT_LR, OPTIMIZERS
from ..schedule import SCHEDULES, LRSchedule
from ..settings import NOT_GIVEN, declared, owned_by, problem, setting

DEFAULT_STEPS = 2000  # a run's length when neither steps nor time is given
COUNT = 10**9  # the most steps (of a run, between evaluations, ...) a setting takes
MAX_STATE_BYTES = 32 << 30  # the BPTT states of one batch: more is a typo, not a plan


def state_bytes(hidden: int, layers: int, batch: int, seq: int, dtype: str) -> int:
    """The states one batch keeps for the backward pass (four arrays of T x B x H per layer)."""
    return seq * batch * hidden * layers * (8 if dtype == "float64" else 4) * 4


def check_memory(hidden: int, layers: int, batch: int, seq: int, dtype: str, vocab_size: int | None) -> None:
    """A UsageError for sizes no machine holds."""
    states = state_bytes(hidden, layers, batch, seq, dtype)
    if states > MAX_STATE_BYTES:
        raise UsageError(f"seq={seq} x batch={batch} x hidden={hidden} x layers={layers} needs about "
                         f"{states / 2**30:.0f} GiB for one batch; use smaller sizes")
    need = parameter_bytes(hidden, layers, dtype, vocab_size or 256)
    if need > MAX_PARAMETER_BYTES:
        raise UsageError(f"hidden={hidden} x layers={layers} needs about {need / 2**30:.0f} GiB for the "
                         "parameters, gradients and optimiser state; use smaller sizes")


@dataclass
class TrainConfig:
    """Every training setting, declared once (rnn_gpu/settings.py): the
    command line's flags, the checks and the resume rules follow from here."""
    hidden: int = setting(256, int, "model", "units per layer", low=1, high=MAX_HIDDEN)
    layers: int = setting(1, int, "model", "stacked tanh layers", low=1, high=MAX_LAYERS)
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
    # Regularisers and initialisations for recurrent nets, each off by default (docs/math.md, "Regularisers and
    # initialisations"); the choices are rnn_gpu.dropout.MASK_KINDS, rnn_gpu.initialisation.INITS and .OUTPUT_BIASES.
    dropout_masks: str = setting("step", str, "model", "--dropout's masks: step draws new ones at every time step; "
                                 "locked one per stream and window, the same at every step (variational dropout)",
                                 choices=("step", "locked"))
    weight_drop: float = setting(0.0, float, "model", "DropConnect on each layer's recurrent weights W: one mask per "
                                 "step, shared by all streams and time steps", low=0, high=0.95)
    zoneout: float = setting(0.0, float, "model", "zoneout: each hidden unit keeps its previous value with this "
                             "probability in training; evaluation and sampling take the expectation", low=0, high=0.95)
    residual: bool = setting(False, bool, "model", "residual connections: from layer 2 up, each layer passes its "
                             "states plus the layer below's output to the layer above (or the output layer)")
    tie_weights: bool = setting(False, bool, "model", "one matrix for the symbols in and out: the output weights V "
                                "are the input weights U transposed, trained as one (Press & Wolf 2017)")
    init: str = setting("uniform", str, "model", "the recurrent weights W at the start: uniform in +-1/sqrt(H), "
                        "orthogonal, or the identity (IRNN)", choices=("uniform", "orthogonal", "identity"))
    init_scale: float = setting(1.0, float, "model", "multiplies the initial W (of any --init)", low=0, high=4,
                                low_inclusive=False)
    output_bias: str = setting("zero", str, "model", "the output bias c at the start: zero, or the unigram "
                               "log-frequencies of the training part", choices=("zero", "unigram"))
    ar: float = setting(0.0, float, "model", "activation regularisation: adds ar * mean(h^2) of the output layer's "
                        "(dropped) input to the loss", low=0, high=100)
    tar: float = setting(0.0, float, "model", "temporal activation regularisation: adds tar * mean((h_t - h_t-1)^2) "
                         "of the top layer's output to the loss", low=0, high=100)
    weight_decay: float = setting(0.0, float, "model", "decoupled weight decay (AdamW's, with either optimiser): "
                                  "every parameter times 1 - lr * weight_decay at each update", low=0, high=0.1)
    vocab: str | None = setting(None, str, "model", "the symbols", choices=VOCAB_KINDS,
                                absent="chars; a prepared corpus keeps its own")
    # The widest bounds of the kinds that take a size; check_vocab_size holds each kind to its own (VOCAB_SIZES).
    vocab_size: int | None = setting(None, int, "model", VOCAB_SIZE_HELP,
                                     low=min(low for _, low, _ in VOCAB_SIZES.values()),
                                     high=max(high for _, _, high in VOCAB_SIZES.values()),
                                     absent=VOCAB_SIZE_ABSENT)
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
    init_from: str | None = setting(None, str, "model", "start from the weights of a PyTorch export (rnn-gpu export "
                                    "--format torch) or a state dict of its modules, a safetensors export or a "
                                    "checkpoint; the corpus's vocabulary must be the file's",
                                    absent="random, from --seed", metavar="FILE")
    skip_nonfinite: bool = setting(False, bool, "run", "skip steps with a non-finite loss or gradient instead of "
                                   "stopping")

    def __post_init__(self):
        """NumPy scalars (and a list of patterns) as the Python values they hold, so a checkpoint can store them."""
        for name in declared(self):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if isinstance(value, list):
                value = tuple(value)
            if isinstance(value, tuple):
                value = tuple(python_value(v) for v in value)
            setattr(self, name, python_value(value))

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
            raise UsageError("give steps= or time= (or both)")
        if self.min_lr is not None and self.min_lr > self.learning_rate:
            raise UsageError(f"min_lr= must be between 0 and the learning rate {self.learning_rate}")
        check_vocab_size(self.vocab, self.vocab_size)
        check_memory(self.hidden, self.layers, self.batch, self.seq, self.dtype, self.vocab_size)
        changed = [f"{name}={getattr(self, name)!r}" for name in INIT_SETTINGS
                   if self.init_from is not None and getattr(self, name) != declared(self)[name].default]
        if changed:
            raise UsageError(f"init_from= gives the starting weights; {', '.join(changed)} would be ignored: leave "
                             "them at their defaults")

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


# How a new run draws its weights, which init_from replaces.
INIT_SETTINGS = ("init", "init_scale", "output_bias")
# What a resumed run takes from its checkpoint rather than from the command line.
MODEL_FIELDS = owned_by(TrainConfig, "model")
