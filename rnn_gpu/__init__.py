"""rnn_gpu: a batched character-level vanilla RNN on NumPy or CuPy."""
from .api import load, sample, train
from .backends import BackendUnavailable, get_backend
from .dropout import Dropout
from .errors import EnvironmentFailure, RnnGpuError, UsageError
from .model import CharRNN

__all__ = ["BackendUnavailable", "CharRNN", "Dropout", "EnvironmentFailure", "RnnGpuError", "UsageError", "get_backend",
           "load", "sample", "train"]
__version__ = "0.1.0"
