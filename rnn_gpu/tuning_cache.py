"""The kernel autotuner's choices kept per device and shape in the cache
directory (the one prepared corpora use, `fileio.cache_dirs`), so that a
later run on the same device takes the same launch plans, and rounds alike,
instead of timing again. A checkpoint carries its run's own choices, which
win on resume (`Trainer`)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .errors import RnnGpuError
from .fileio import atomic_write, cache_dirs, make_directory, read_regular

FILENAME = "kernel-choices.json"
MAX_BYTES = 16 << 20  # a choices file larger than this is not one the program wrote


def _key(row) -> tuple:
    return row[0], row[1], json.dumps(row[2])  # device, table, the shape it was chosen for


def load_kernel_choices(dirs: list[Path] | None = None) -> list:
    """The rows of the first readable choices file (runner.tuned_choices' form), or none.
    Whatever else is found there (any content, a FIFO, a directory, no
    permission) counts as no file: the kernels are timed again."""
    for directory in dirs if dirs is not None else cache_dirs():
        with contextlib.suppress(OSError, ValueError, RecursionError):
            rows = json.loads(read_regular(Path(directory) / FILENAME, MAX_BYTES))
            if isinstance(rows, list):  # rows of another shape are dropped; the runner checks the rest
                return [r for r in rows if isinstance(r, list) and len(r) == 4 and all(isinstance(v, str)
                                                                                      for v in r[:2])]
    return []


def save_kernel_choices(rows: list, dirs: list[Path] | None = None) -> bool:
    """Merges `rows` into the first writable cache directory's file (new
    rows win); a machine without one keeps nothing. Returns whether written."""
    if not rows:
        return False
    rows = json.loads(json.dumps(rows))  # as a file holds them: lists, not tuples
    for directory in dirs if dirs is not None else cache_dirs():
        merged = {_key(r): r for r in load_kernel_choices([directory])}
        if all(merged.get(_key(r)) == r for r in rows):
            return False  # nothing new
        merged.update({_key(r): r for r in rows})
        text = json.dumps(list(merged.values()), indent=0).encode()
        try:
            make_directory(Path(directory))
            atomic_write(Path(directory) / FILENAME, lambda f, text=text: f.write(text))
            return True
        except (OSError, RnnGpuError):
            continue  # not writable here: the next directory
    return False
