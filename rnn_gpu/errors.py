"""Every exception the package raises on purpose, in one place. The CLI turns
each into one `error: ...` line and an exit code: `UsageError` (bad input)
exits 2, `EnvironmentFailure` (disk full, no permission, out of memory) 1, a
stop signal 128 + its number. The Python API lets nothing else escape.
Imports nothing of the package."""
import signal


class RnnGpuError(Exception):
    """Base of every error rnn_gpu reports by message rather than traceback."""

    exit_code = 2


class UsageError(RnnGpuError):
    """Bad input from the user: a flag, a corpus, a checkpoint."""

    exit_code = 2


class EnvironmentFailure(RnnGpuError):
    """The machine refused: no space, no permission, no memory."""

    exit_code = 1


class CorpusError(UsageError, ValueError):
    """A corpus that cannot be used; the message says why."""


class CheckpointError(UsageError, ValueError):
    """A checkpoint that cannot be used; the message says why."""


class DropoutError(UsageError, ValueError):
    """A dropout key that names no masks; the message says why."""


class BackendUnavailable(UsageError, RuntimeError):
    """The requested backend cannot run on this machine."""


class NvrtcUnavailable(EnvironmentFailure, RuntimeError):
    """No NVRTC library to compile the kernels with."""


class Diverged(RnnGpuError, FloatingPointError):
    """A non-finite loss or gradient; the last good checkpoint is kept."""

    exit_code = 1


class Interrupted(RnnGpuError):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived during training; the
    step finished and a checkpoint was written."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} after step {step}; checkpoint written")
        self.signum, self.step = signum, step
        self.exit_code = 128 + signum


class Terminated(RnnGpuError):
    """SIGTERM or SIGHUP outside the training loop (which finishes its step
    and checkpoints instead): raised where the process was, so a file being
    written is removed rather than left half-made."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


class QuietExit(RnnGpuError):
    """Another process of the same job reports the error; this one only exits
    with its code, so a job prints one `error:` line, not one per rank."""

    def __init__(self, exit_code: int):
        super().__init__("")
        self.exit_code = exit_code


# Signals that end a run, its checkpoint written; the first listed wins if several came.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
