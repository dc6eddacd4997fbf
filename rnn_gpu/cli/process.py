"""Command line: `rnn-gpu train|sample|...` (also `python -m rnn_gpu`):
the process around a command, its standard streams, stop signals and MPI
rank. Every usage problem ends as one line `error: ...` on stderr and exit
code 2, before any file is touched (reporting.py).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys

from ..errors import STOP_SIGNALS, EnvironmentFailure, RnnGpuError, Terminated
from ..parallel import env_rank, launched_by_mpi
from .parsers import build_parser
from .reporting import EXIT_USAGE, report_once


def main(argv=None) -> int:
    try:
        with open_standard_streams() as closed, terminations_raise():
            return run_command(argv, stdout_closed="stdout" in closed)
    except (Terminated, KeyboardInterrupt) as exc:  # came while a command was being set up or wound down
        return report_stop(exc)


def run_command(argv, stdout_closed: bool = False) -> int:
    for stream in (sys.stdout, sys.stderr):  # text a terminal cannot show is escaped, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        if stdout_closed and args.command == "sample":
            raise EnvironmentFailure("standard output is closed: nowhere to write the sample")
        if args.command is None:  # bare `rnn-gpu`: the usage and the commands
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command != "train" and env_rank() != 0:
            return 0  # under an MPI launcher only training is distributed; the rest runs once, on rank 0
        return args.run(args)
    except BrokenPipeError:  # the reader went away (`rnn-gpu sample ... | head`): stop as `cat` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (Terminated, KeyboardInterrupt) as exc:
        return report_stop(exc)
    except (RnnGpuError, MemoryError, OSError) as exc:
        return report_once(exc)
    except Exception as exc:
        if not launched_by_mpi():
            raise  # a bug in one process: its traceback
        return report_once(exc)  # under MPI a traceback on every rank helps no one: one line


def report_stop(exc: BaseException) -> int:
    """A stop signal outside the training loop. Under an MPI launcher, unless
    every rank met it alike (`agreed`), the other ranks may be waiting for
    this one in a collective, or in MPI's start-up, where no abort reaches
    them: after its line this rank ends by the signal itself, and the
    launcher ends the rest of the job (as for any rank a signal ends)."""
    code = report_once(exc)
    if launched_by_mpi() and not getattr(exc, "agreed", False):
        signum = exc.exit_code - 128 if isinstance(exc, Terminated) else signal.SIGINT
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return code


@contextlib.contextmanager
def terminations_raise():
    """SIGTERM and SIGHUP raise `Terminated` where the process is (their
    default would kill it mid-write); the training loop replaces this with its
    own finish-the-step handling while it runs."""
    def handler(signum, frame):
        raise Terminated(signum)

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
        for s in STOP_SIGNALS:
            if s != signal.SIGINT:  # which raises KeyboardInterrupt already
                previous[s] = signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def open_standard_streams():
    """A closed stdout or stderr (`2>&-`) is Python's None: stand os.devnull in
    for it while a command runs. Yields the names of those that were closed."""
    closed = [name for name in ("stdout", "stderr") if getattr(sys, name) is None]
    for name in closed:
        setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 (closed below)
    try:
        yield closed
    finally:
        for name in closed:
            getattr(sys, name).close()
            setattr(sys, name, None)
