"""The command line `rnn-gpu`: `parsers` (the flags of each command),
`commands` (what each command runs), `reporting` (exceptions to `error:`
lines and exit codes), `process` (`main`: the process around a command,
its standard streams, stop signals and MPI rank)."""
from .parsers import build_parser
from .process import main

__all__ = ["build_parser", "main"]
