"""The commands: each takes the parsed flags, checks what the parser could
not, and runs its job."""
from __future__ import annotations

import dataclasses
import glob
import itertools
import sys
from pathlib import Path

from ..checkpoint import FILENAME
from ..checks import MAX_SEED
from ..data.vocab import check_vocab_size
from ..errors import Diverged, EnvironmentFailure, Interrupted, QuietExit, UsageError
from ..parallel import make_communicator
from ..settings import from_flags
from ..training.config import TrainConfig
from ..training.recipes import RECIPES, recipe_settings
from .reporting import end_job


def train_config(args) -> TrainConfig:
    cfg = from_flags(TrainConfig, args)
    if args.recipe is not None:  # the recipe's values, but for the flags the command line gave
        given = {name: getattr(cfg, name) for name in given_flags(args) if hasattr(cfg, name)}
        cfg = dataclasses.replace(cfg, **recipe_settings(args.recipe, given))
        if not RECIPES[args.recipe].measured:
            print(f"note: recipe {args.recipe} has not been measured yet", file=sys.stderr, flush=True)
    if not args.resume:  # a resumed run's settings come from its checkpoint, checked there
        cfg.validate()
    return cfg


def given_flags(args) -> set[str]:
    """The options the command line named (as `dest` names): a resumed run
    says which of them its checkpoint overrides."""
    return {token[2:].split("=", 1)[0].replace("-", "_") for token in args.argv if token.startswith("--")}


def run_train(args) -> int:
    from ..training import train

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
        summary = ", ".join(f"{k} {final[k]:.4g}" for k in ("train_loss", "val_loss", "symbols_per_s") if k in final)
        print(f"step {final['step']}: {summary}; checkpoint in {args.out / FILENAME}")
    return 0


def run_sample(args) -> int:
    import secrets

    from ..api import load
    from ..sample import encode_prime, generate, sample_texts

    model, vocab = load(args.checkpoint, args.backend)  # any depth
    seed = args.seed if args.seed is not None else secrets.randbelow(MAX_SEED + 1)
    options = {"temperature": args.temperature, "top_k": args.top_k, "seed": seed, "num_samples": args.num_samples,
               "top_p": args.top_p}
    if args.num_samples == 1:  # streamed as generated: Ctrl-C keeps what was printed
        pieces = generate(model, vocab, args.length, prime=args.prime, **options)
        first = next(pieces)  # the prime is checked here, before anything is printed
        announce_seed(args.seed, seed)
        for _, piece in itertools.chain([first], pieces):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    prime_ids = encode_prime(vocab, args.prime)
    announce_seed(args.seed, seed)
    texts = sample_texts(model, vocab, prime_ids, args.length, **options)
    sys.stdout.write("".join(f"--- sample {i + 1} of {len(texts)} ---\n{t}\n" for i, t in enumerate(texts)))
    return 0


def announce_seed(given, seed: int) -> None:
    """A sample drawn from a fresh seed says which, so that it can be drawn again."""
    if given is None:
        print(f"seed: {seed}", file=sys.stderr, flush=True)


def run_bench(args) -> int:
    import json

    from .. import bench
    from ..backends import get_backend

    if args.compare:
        bench.compare(args.out, args.seconds, log=lambda text: print(text, flush=True))
        print(f"wrote {args.out / 'bench.md'}, {args.out / 'bench.json'}, {args.out / 'bench.png'}")
        return 0
    name = get_backend("auto").name if args.backend == "auto" else args.backend
    row = bench.run_one(name, args.hidden, args.batch, args.seq, args.seconds, layers=args.layers,
                        dropout=args.dropout, vocab=args.vocab_size)
    print(json.dumps(row) if args.json else bench.format_table([row]))
    return 0


def run_prepare(args) -> int:
    from ..data.prepared import load_prepared, prepare, prepared_prefix

    for spec in args.corpus:
        if not Path(spec).exists() and not glob.has_magic(spec):
            raise UsageError(f"corpus not found: {spec}")
    check_vocab_size(args.vocab, args.vocab_size)
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
    from ..plot import plot_metrics

    output = args.output or args.run_dir / "loss.png"
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory; name the image file, e.g. {output / 'loss.png'}")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: no directory {output.parent}")
    plot_metrics(args.run_dir / "metrics.jsonl", output)
    print(f"wrote {output}")
    return 0


def run_export(args) -> int:
    from ..export import export

    print(f"wrote {export(args.source, args.format, args.output)}")
    return 0


INSPECT_KEYWORDS = frozenset({"corpus", "seq", "output"})


def run_inspect(args) -> int:
    from ..api import inspect
    from ..settings import as_flags

    try:
        report = inspect(args.checkpoint, corpus=args.corpus, seq=args.seq, output=args.output)
    except UsageError as exc:  # written for Python callers (corpus=, output=): the flags' words here
        raise type(exc)(as_flags(str(exc), INSPECT_KEYWORDS)) from None
    prefix = report["output"]
    lines = ", ".join(f"layer {layer['layer']}: sigma_max {layer['largest_singular_value']:.3g}, saturated "
                      f"{layer['saturation']:.1%}" for layer in report["layers"])
    step = "" if report["step"] is None else f"step {report['step']}, "
    print(f"{step}seq {report['seq']}, {report['windows']} windows x {report['streams']} streams: "
          f"{lines}; wrote {prefix}.json, {prefix}.png")
    return 0
