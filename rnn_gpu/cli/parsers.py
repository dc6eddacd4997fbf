"""The command line's parsers: one per command, the training flags
generated from the settings' declarations (rnn_gpu/settings.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..backends import BACKEND_NAMES
from ..checks import MAX_SEED
from ..data.vocab import VOCAB_KINDS
from ..errors import UsageError
from ..parallel import DISTRIBUTED_MODES
from ..sample import MAX_LENGTH, MAX_SAMPLES
from ..settings import add_flags, declared, int_in, real
from ..settings import text as nonempty  # a path or glob: empty would mean the current directory
from ..training.config import TrainConfig
from ..training.recipes import RECIPES
from .commands import run_bench, run_export, run_inspect, run_plot, run_prepare, run_sample, run_train


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage dump
        raise UsageError(message)


def positive_int(limit):
    return int_in(1, limit)


def non_negative_int(limit):
    return int_in(0, limit)


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
    p.add_argument("--recipe", choices=RECIPES, default=None,
                   help="start from a named set of settings; flags given beside it win (docs/performance.md)")
    p.set_defaults(run=run_train)


def add_sample_parser(sub):
    p = sub.add_parser("sample", allow_abbrev=False, help="generate text from a checkpoint")
    p.add_argument("checkpoint", type=path, help="run directory (its checkpoint.npz, else best.npz) or .npz checkpoint")
    p.add_argument("--length", type=positive_int(MAX_LENGTH), default=500, help="symbols to generate (default 500)")
    p.add_argument("--temperature", type=real(0, 100, low_inclusive=True), default=1.0,
                   help="default 1; 0 picks the most likely symbol")
    p.add_argument("--top-k", type=positive_int(MAX_LENGTH), default=None,
                   help="keep exactly the k most likely symbols (ties: the lower index)")
    p.add_argument("--top-p", type=real(0, 1), default=None,
                   help="nucleus sampling: keep the fewest most likely symbols whose probability reaches p")
    p.add_argument("--num-samples", type=positive_int(MAX_SAMPLES), default=1,
                   help="independent samples generated together (default 1)")
    p.add_argument("--prime", default="", help="text to start from (default none)")
    p.add_argument("--seed", type=non_negative_int(MAX_SEED), default=None,
                   help="default: fresh each run, printed to stderr so a sample can be reproduced")
    p.add_argument("--backend", choices=BACKEND_NAMES, default="numpy",
                   help="default numpy: one symbol at a time is latency-bound")
    p.set_defaults(run=run_sample)


def add_bench_parser(sub):
    from ..bench import SYSTEMS, VOCAB

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


def add_export_parser(sub):
    from ..export import FORMATS

    p = sub.add_parser("export", allow_abbrev=False,
                       help="write a model for PyTorch, ONNX Runtime or safetensors (docs/export.md)")
    p.add_argument("source", type=path, metavar="RUN",
                   help="run directory (its checkpoint.npz, else best.npz), .npz checkpoint or .safetensors export")
    p.add_argument("--format", required=True, choices=FORMATS, help="torch, onnx or safetensors (required)")
    p.add_argument("-o", "--output", required=True, type=path, help="the file to write (required)")
    p.set_defaults(run=run_export)


def add_inspect_parser(sub):
    seq = declared(TrainConfig)["seq"].metadata["setting"]
    p = sub.add_parser("inspect", allow_abbrev=False,
                       help="measure the vanishing gradient: gradient norm against distance, saturation, "
                            "largest singular value of each W")
    p.add_argument("checkpoint", type=path, metavar="DIR_OR_CHECKPOINT",
                   help="run directory (its checkpoint.npz, else best.npz), .npz checkpoint or .safetensors export")
    p.add_argument("--corpus", nargs="+", type=nonempty, default=None, metavar="FILE",
                   help="held-out windows from this corpus, split as the run split its own (default: the run's)")
    p.add_argument("--seq", type=int_in(seq.low, seq.high), default=None, metavar="T",
                   help="time steps per window: distances 0..T-1 (default: the run's --seq)")
    p.add_argument("-o", "--output", type=path, default=None, metavar="PREFIX",
                   help="writes PREFIX.json and PREFIX.png (a directory: inside it; default DIR/inspect)")
    p.set_defaults(run=run_inspect)


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(prog="rnn-gpu", description="Character-level RNN trainer for NumPy and CUDA GPUs.",
                    allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"rnn-gpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_train_parser(sub)
    add_sample_parser(sub)
    add_bench_parser(sub)
    add_prepare_parser(sub)
    add_plot_parser(sub)
    add_export_parser(sub)
    add_inspect_parser(sub)
    return parser
