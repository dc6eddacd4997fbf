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
from .fileio import atomic_write, cache_dirs, make_directory

FILENAME = "kernel-choices.json"


def _key(row) -> tuple:
    return row[0], row[1], json.dumps(row[2])  # device, table, the shape it was chosen for


def load_kernel_choices(dirs: list[Path] | None = None) -> list:
    """The rows of the first readable choices file (runner.tuned_choices' form), or none."""
    for directory in dirs if dirs is not None else cache_dirs():
        with contextlib.suppress(OSError, ValueError):
            rows = json.loads((Path(directory) / FILENAME).read_text())
            if isinstance(rows, list) and all(isinstance(r, list) and len(r) == 4 for r in rows):
                return rows
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
