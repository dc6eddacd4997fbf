"""Training a model: `config` (the run's settings), `trainer` (model,
optimiser, data position and state; one step), `loop` (`train` and the loop),
`stopping` (signals, the ranks' flags, divergence), `evaluation`, `setup`
(a run's start on every rank), `run_dir` (metrics log, lock, description),
`metrics` (the metrics file's records), `progress` (the console)."""
from ..errors import Diverged, Interrupted
from .config import DEFAULT_STEPS, MODEL_FIELDS, TrainConfig
from .evaluation import Evaluation, evaluate
from .loop import train
from .trainer import EXCHANGED, Trainer

__all__ = ["DEFAULT_STEPS", "EXCHANGED", "MODEL_FIELDS", "Diverged", "Evaluation", "Interrupted", "TrainConfig",
           "Trainer", "evaluate", "train"]
