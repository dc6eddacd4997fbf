"""Command line: `rnn-gpu train|sample|...` (also `python -m rnn_gpu`).

Every usage problem ends as one line `error: ...` on stderr and exit code 2,
before any file is touched.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import glob
import itertools
import os
import signal
import sys
from pathlib import Path

from .backends import BACKEND_NAMES
from .checkpoint import FILENAME
from .checks import MAX_SEED
from .data import VOCAB_KINDS
from .errors import EnvironmentFailure, QuietExit, RnnGpuError, Terminated, UsageError
from .parallel import DISTRIBUTED_MODES, env_rank, launched_by_mpi, make_communicator
from .settings import add_flags, from_flags, int_in, real
from .training import Diverged, Interrupted, TrainConfig

EXIT_USAGE = 2
MAX_STATE_BYTES = 32 << 30  # the BPTT states of one batch; more is a typo, not a plan


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage dump
        raise UsageError(message)


def positive_int(limit):
    return int_in(1, limit)


def non_negative_int(limit):
    return int_in(0, limit)


def nonempty(text: str) -> str:
    """A path or glob argument: an empty one would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def path(text: str) -> Path:
    return Path(nonempty(text))


def add_train_parser(sub):
    p = sub.add_parser("train", allow_abbrev=False, help="train a model on a text corpus")
    p.add_argument("corpus", nargs="*", type=nonempty,
                   help="text files, directories of them, globs, or one prepared PREFIX.json "
                        "(default: the Python standard library's source)")
    p.add_argument("--out", required=True, type=path, help="run directory (required)")
    add_flags(p, TrainConfig)
    p.add_argument("--resume", action="store_true",
                   help="continue DIR/checkpoint.npz exactly (model and data settings come from it)")
    p.add_argument("--force", action="store_true", help="start over in a directory that holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no run description and no progress")
    p.add_argument("--distributed", choices=DISTRIBUTED_MODES, default="auto",
                   help="auto: MPI when started by an MPI launcher (mpiexec, srun), else one process (default auto)")
    p.set_defaults(run=run_train)


def add_sample_parser(sub):
    p = sub.add_parser("sample", allow_abbrev=False, help="generate text from a checkpoint")
    p.add_argument("checkpoint", type=path, help="run directory (its checkpoint.npz, else best.npz) or .npz checkpoint")
    p.add_argument("--length", type=positive_int(10**7), default=500, help="symbols to generate (default 500)")
    p.add_argument("--temperature", type=real(0, 100, low_inclusive=True), default=1.0,
                   help="default 1; 0 picks the most likely symbol")
    p.add_argument("--top-k", type=positive_int(10**7), default=None,
                   help="keep exactly the k most likely symbols (ties: the lower index)")
    p.add_argument("--top-p", type=real(0, 1), default=None,
                   help="nucleus sampling: keep the fewest most likely symbols whose probability reaches p")
    p.add_argument("--num-samples", type=positive_int(4096), default=1,
                   help="independent samples generated together (default 1)")
    p.add_argument("--prime", default="", help="text to start from (default none)")
    p.add_argument("--seed", type=non_negative_int(MAX_SEED), default=None,
                   help="default: fresh each run, printed to stderr so a sample can be reproduced")
    p.add_argument("--backend", choices=BACKEND_NAMES, default="numpy",
                   help="default numpy: one symbol at a time is latency-bound")
    p.set_defaults(run=run_sample)


def add_bench_parser(sub):
    from .bench import SYSTEMS, VOCAB

    p = sub.add_parser("bench", allow_abbrev=False, help="measure training throughput, recurrence speed and memory")
    p.add_argument("--backend", choices=(*SYSTEMS, "auto"), default="auto",
                   help="our backends, or torch-cpu, torch-cuda, seed (the per-character loop) (default auto)")
    add_flags(p, TrainConfig, ("hidden", "layers", "dropout", "batch", "seq", "vocab_size"),
              defaults={"hidden": 512, "batch": 64, "vocab_size": VOCAB},
              helps={"dropout": "dropout in the timed training step",
                     "vocab_size": "symbols of the timed model (65: tiny-shakespeare's characters; 8000: a word "
                                   "model's)"})
    p.add_argument("--seconds", type=real(0, 3600), default=3.0,
                   help="wall time per system and configuration, warm-up included (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compare", action="store_true", help="the whole grid across every available system")
    p.add_argument("--out", type=path, default=Path("bench-results"),
                   help="where --compare writes its files (default bench-results)")
    p.set_defaults(run=run_bench)


def add_prepare_parser(sub):
    p = sub.add_parser("prepare", allow_abbrev=False, help="encode a corpus of any size to disk, streaming")
    p.add_argument("corpus", nargs="+", type=nonempty, help="text files, directories of them, or globs")
    add_flags(p, TrainConfig, ("include", "exclude", "vocab_size"))
    p.add_argument("--vocab", choices=VOCAB_KINDS, default="chars", help="the symbols (default chars)")
    p.add_argument("-o", "--output", type=path, default=None,
                   help="output prefix: writes PREFIX.bin and PREFIX.json (PREFIX.json given names the same; "
                        "a directory: inside it; default: beside the corpus)")
    p.set_defaults(run=run_prepare)


def add_plot_parser(sub):
    p = sub.add_parser("plot", allow_abbrev=False, help="draw train and validation loss from DIR/metrics.jsonl")
    p.add_argument("run_dir", type=path, help="a run directory (holding metrics.jsonl)")
    p.add_argument("-o", "--output", type=path, default=None,
                   help="image file, its format from the name: .png, .pdf, .svg, ... (default DIR/loss.png)")
    p.set_defaults(run=run_plot)


def build_parser() -> Parser:
    from . import __version__

    parser = Parser(prog="rnn-gpu", description="Character-level RNN trainer for NumPy and CUDA GPUs.",
                    allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"rnn-gpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_train_parser(sub)
    add_sample_parser(sub)
    add_bench_parser(sub)
    add_prepare_parser(sub)
    add_plot_parser(sub)
    return parser


def train_config(args):
    state_bytes = args.seq * args.batch * args.hidden * args.layers * (8 if args.dtype == "float64" else 4) * 4
    if state_bytes > MAX_STATE_BYTES:
        raise UsageError(f"--seq {args.seq} x --batch {args.batch} x --hidden {args.hidden} x --layers {args.layers} "
                         f"needs about {state_bytes / 2**30:.0f} GiB for one batch; use smaller sizes")
    cfg = from_flags(TrainConfig, args)
    if not args.resume:  # a resumed run's settings come from its checkpoint, checked there
        cfg.validate()
    return cfg


def given_flags(args) -> set[str]:
    """The options the command line named (as `dest` names): a resumed run
    says which of them its checkpoint overrides."""
    return {token[2:].split("=", 1)[0].replace("-", "_") for token in args.argv if token.startswith("--")}


def run_train(args) -> int:
    from .training import train

    cfg = train_config(args)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    if args.resume and args.force:
        raise UsageError("--resume and --force contradict each other")
    if args.resume and not (args.out / FILENAME).exists():
        raise UsageError(f"nothing to resume: {args.out / FILENAME} does not exist")
    if (args.out / FILENAME).exists() and not (args.force or args.resume):
        raise UsageError(f"{args.out} already holds a checkpoint; pass --resume to continue or --force to start over")
    comm = make_communicator(args.distributed)
    try:
        final = train(cfg, args.corpus or None, args.out, progress=not args.quiet, resume=args.resume, comm=comm,
                      given=given_flags(args))
    except (QuietExit, Diverged, Interrupted):
        raise  # every rank raises these alike; rank 0 reports
    except BaseException as exc:
        if comm.size > 1 and not getattr(exc, "agreed", False):  # one rank failed alone: end the whole job
            end_job(comm, exc)
        raise
    if comm.master_process:
        summary = ", ".join(f"{k} {final[k]:.4g}" for k in ("train_loss", "val_loss", "chars_per_s") if k in final)
        print(f"step {final['step']}: {summary}; checkpoint in {args.out / FILENAME}")
    return 0


def run_sample(args) -> int:
    import secrets

    from .api import load
    from .sample import collect, generate

    model, vocab = load(args.checkpoint, args.backend)  # any depth
    seed = args.seed if args.seed is not None else secrets.randbelow(MAX_SEED + 1)
    pieces = generate(model, vocab, args.length, args.temperature, args.top_k, args.prime, seed,
                      args.num_samples, args.top_p)
    first = next(pieces)  # the prime is checked here, before anything is printed
    if args.seed is None:
        print(f"seed: {seed}", file=sys.stderr, flush=True)
    pieces = itertools.chain([first], pieces)
    if args.num_samples == 1:  # streamed as generated: Ctrl-C keeps what was printed
        for _, piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    texts = collect(pieces, args.num_samples)
    sys.stdout.write("".join(f"--- sample {i + 1} of {len(texts)} ---\n{t}\n" for i, t in enumerate(texts)))
    return 0


def run_bench(args) -> int:
    import json

    from . import bench
    from .backends import get_backend

    if args.compare:
        bench.compare(args.out, args.seconds, log=lambda text: print(text, flush=True))
        print(f"wrote {args.out / 'bench.md'}, {args.out / 'bench.json'}, {args.out / 'bench.png'}")
        return 0
    name = get_backend("auto").name if args.backend == "auto" else args.backend
    row = bench.run_one(name, args.hidden, args.batch, args.seq, args.seconds, layers=args.layers,
                        dropout=args.dropout, vocab=args.vocab_size)
    print(json.dumps(row) if args.json else bench.format_table([row]))
    return 0


def prepared_prefix(output: Path | None, sources: list[str], vocab: str) -> Path:
    """Where `prepare` writes PREFIX.bin and PREFIX.json: -o PREFIX (PREFIX.json
    or PREFIX.bin naming the same), inside -o DIR, or beside a single source."""
    source = Path(sources[0])
    single = len(sources) == 1 and source.exists()
    if output is None or output.is_dir():
        if not single:
            raise UsageError("pass -o PREFIX: with several sources or a glob there is no single name to derive")
        return (output or source.parent) / f"{source.name}.{vocab}"
    if output.suffix in (".json", ".bin"):
        output = output.with_suffix("")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: no directory {output.parent}")
    return output


def run_prepare(args) -> int:
    from .prepare import load_prepared, prepare

    for spec in args.corpus:
        if not Path(spec).exists() and not glob.has_magic(spec):
            raise UsageError(f"corpus not found: {spec}")
    if args.vocab_size is not None and args.vocab != "words":
        raise UsageError("--vocab-size goes with --vocab words")
    output = prepared_prefix(args.output, args.corpus, args.vocab)
    try:
        meta = prepare(args.corpus, args.vocab, output, args.include, args.exclude, args.vocab_size)
    except EnvironmentFailure as exc:
        hint = "; pass -o PREFIX to write elsewhere" if args.output is None else ""
        raise EnvironmentFailure(f"{exc}{hint}") from None
    prepared = load_prepared(meta)
    print(f"{prepared.meta['length']} symbols, vocabulary of {len(prepared.vocab)} ({prepared.vocab.kind}), "
          f"{len(prepared.meta['sources'])} file(s) -> {meta} (train with: rnn-gpu train {meta} --out DIR)")
    return 0


def run_plot(args) -> int:
    from .plot import plot_metrics

    output = args.output or args.run_dir / "loss.png"
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory; name the image file, e.g. {output / 'loss.png'}")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: no directory {output.parent}")
    plot_metrics(args.run_dir / "metrics.jsonl", output)
    print(f"wrote {output}")
    return 0


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, RnnGpuError):
        return exc.exit_code
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return EXIT_USAGE  # a path no file system holds is bad input, not a failing machine
    if isinstance(exc, Interrupted):
        return 128 + exc.signum
    return 130 if isinstance(exc, KeyboardInterrupt) else 1  # divergence, no memory, no disk, a bug


def message(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return f"training stopped: {exc}; the last good checkpoint is kept"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc or 'MemoryError'}); lower --batch, --seq, --hidden or --layers"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    if isinstance(exc, (RnnGpuError, Interrupted)):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def one_line(text: str) -> str:
    """Control characters (a newline in a file name or a flag's value) as escapes: an error is one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def end_job(comm, exc: BaseException) -> None:
    """One rank failed alone: its `error:` line, then every rank of the job
    ends (MPI_Abort), with no second report from this one: the stop signals
    the launcher sends the other ranks are ignored here from now on."""
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    comm.abort(report(exc))


def report(exc: BaseException) -> int:
    """Prints the one `error:` line for `exc`; returns the exit code."""
    if not isinstance(exc, QuietExit):
        print(f"error: {one_line(message(exc))}", file=sys.stderr, flush=True)
    return exit_code(exc)


@contextlib.contextmanager
def terminations_raise():
    """SIGTERM and SIGHUP raise `Terminated` where the process is (their
    default would kill it mid-write); the training loop replaces this with its
    own finish-the-step handling while it runs."""
    def handler(signum, frame):
        raise Terminated(signum)

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
        for s in (signal.SIGTERM, signal.SIGHUP):
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


def main(argv=None) -> int:
    try:
        with open_standard_streams() as closed, terminations_raise():
            return run_command(argv, stdout_closed="stdout" in closed)
    except (Terminated, KeyboardInterrupt) as exc:  # came while a command was being set up or wound down
        return report_stop(exc)


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
    except (RnnGpuError, Diverged, Interrupted, MemoryError, OSError) as exc:
        return report_once(exc)
    except Exception as exc:
        if not launched_by_mpi():
            raise  # a bug in one process: its traceback
        return report_once(exc)  # under MPI a traceback on every rank helps no one: one line


def report_once(exc: BaseException) -> int:
    """In an MPI job every rank meets the same bad flag, divergence or signal,
    and rank 0 reports it; an error that only some ranks met (`agreed`) is
    reported by the lowest of them."""
    speaks = env_rank() == 0 or getattr(exc, "agreed", False)
    return report(exc) if speaks else exit_code(exc)
