"""rnn_gpu: a batched vanilla RNN over characters, bytes or words, on NumPy or CuPy."""
from .api import inspect, load, sample, train
from .backends import get_backend
from .dropout import Dropout
from .errors import BackendUnavailable, EnvironmentFailure, RnnGpuError, UsageError
from .export import export
from .model import CharRNN, TextRNN

__all__ = ["BackendUnavailable", "CharRNN", "Dropout", "EnvironmentFailure", "RnnGpuError", "TextRNN", "UsageError",
           "export", "get_backend", "inspect", "load", "sample", "train"]
__version__ = "0.1.0"
