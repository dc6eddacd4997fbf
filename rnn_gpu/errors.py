"""The exceptions the package raises on purpose. The CLI turns each into one
`error: ...` line: `UsageError` (bad input) exits 2, `EnvironmentFailure`
(disk full, no permission, out of memory) exits 1. Imports nothing of the
package."""
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


class QuietExit(RnnGpuError):
    """Another process of the same job reports the error; this one only exits
    with its code, so a job prints one `error:` line, not one per rank."""

    def __init__(self, exit_code: int):
        super().__init__("")
        self.exit_code = exit_code


class Terminated(RnnGpuError):
    """SIGTERM or SIGHUP outside the training loop (which finishes its step
    and checkpoints instead): raised where the process was, so a file being
    written is removed rather than left half-made."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum
