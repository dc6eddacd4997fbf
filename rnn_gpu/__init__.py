"""rnn_gpu: a batched character-level vanilla RNN on NumPy or CuPy."""
from .backends import BackendUnavailable, get_backend
from .model import CharRNN

__all__ = ["BackendUnavailable", "CharRNN", "get_backend"]
__version__ = "0.1.0"
