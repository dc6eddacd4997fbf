"""Exceptions to what a user sees: one `error: ...` line on stderr and an
exit code (2 bad input, 1 a failing machine, 128 + N a signal), once per MPI
job; errors written for Python callers (`batch=`) name the flags (`--batch`)."""
from __future__ import annotations

import errno
import signal
import sys

from ..errors import STOP_SIGNALS, Diverged, QuietExit, RnnGpuError
from ..parallel import env_rank
from ..sample import OPTIONS as SAMPLE_OPTIONS
from ..settings import as_flags, declared
from ..training.config import TrainConfig

EXIT_USAGE = 2
KEYWORDS = frozenset({*declared(TrainConfig), *SAMPLE_OPTIONS, "out"})  # the Python keywords that are flags too


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, RnnGpuError):
        return exc.exit_code
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return EXIT_USAGE  # a path no file system holds is bad input, not a failing machine
    return 130 if isinstance(exc, KeyboardInterrupt) else 1  # no memory, no disk, a bug


def message(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return f"training stopped: {exc}; the last good checkpoint is kept"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc or 'MemoryError'}); lower --batch, --seq, --hidden or --layers"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    if isinstance(exc, RnnGpuError):
        return as_flags(str(exc), KEYWORDS)
    return f"unexpected {type(exc).__name__}: {exc}"


def one_line(text: str) -> str:
    """Control characters (a newline in a file name or a flag's value) as escapes: an error is one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def end_job(comm, exc: BaseException) -> None:
    """One rank failed alone: its `error:` line, then every rank of the job
    ends (MPI_Abort), with no second report from this one: the stop signals
    the launcher sends the other ranks are ignored here from now on."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    comm.abort(report(exc))


def report(exc: BaseException) -> int:
    """Prints the one `error:` line for `exc`; returns the exit code."""
    if not isinstance(exc, QuietExit):
        print(f"error: {one_line(message(exc))}", file=sys.stderr, flush=True)
    return exit_code(exc)


def report_once(exc: BaseException) -> int:
    """In an MPI job every rank meets the same bad flag, divergence or signal,
    and rank 0 reports it; an error that only some ranks met (`agreed`) is
    reported by the lowest of them."""
    speaks = env_rank() == 0 or getattr(exc, "agreed", False)
    return report(exc) if speaks else exit_code(exc)
