"""DIR/metrics.jsonl: one JSON object per logged step, written by training
and read by `rnn-gpu plot`.

A record counts `symbols` (what the model reads and predicts: characters,
bytes or word tokens) apart from `chars` (characters of the original text);
for a character model they are equal. Records written before the keys said
so (`chars` for symbols seen, `val_text_chars` for characters) are read with
today's keys (`current_keys`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError
from ..fileio import atomic_write, is_regular, open_for_append, os_failure


class MetricsLog:
    """Appends one JSON object per logged step, flushed as it goes. The file
    is made at the first record, so a run that fails before its first step
    leaves no empty log behind.

    `resume_step`: continue the log of a run resumed at that step. Records
    past it (steps an interruption undid: they are run again) and a line torn
    by a kill are dropped first, so every step appears once, in order."""

    def __init__(self, path: Path, resume_step: int | None = None, lock: int | None = None):
        """`lock`: the run directory's lock (fileio.lock_directory), released by close()."""
        self.path, self.append, self.file, self.lock = path, resume_step is not None, None, lock
        if os.path.lexists(path) and not is_regular(path):  # a FIFO would block the run at its first record
            raise UsageError(f"{path} is not a regular file; move it out of the run directory")
        if self.append and path.is_file():
            rewind(path, resume_step)

    def write(self, **record) -> None:
        if self.file is None:
            self.file = open_for_append(self.path, self.append)
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            raise os_failure(exc, "writing", self.path) from None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def step_of(line: str):
    """The step of a metrics line, or None for a line that is not a record."""
    try:
        record = json.loads(line)
        return int(record["step"]) if isinstance(record, dict) else None
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


def rewind(path: Path, step: int) -> None:
    """Keeps the records of `path` up to `step` (rewritten atomically, only if
    anything goes)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise os_failure(exc, "reading", path) from None
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and (s := step_of(line)) is not None and s <= step]
    if len(kept) != len(lines):
        atomic_write(path, lambda f: f.write("".join(kept).encode()))


# The keys of records from before `symbols` and `chars` were told apart, and theirs today.
RENAMED = {"chars": "symbols", "chars_per_s": "symbols_per_s", "val_chars": "val_symbols",
           "val_part_chars": "val_part_symbols", "val_text_chars": "val_chars"}


def current_keys(record: dict) -> dict:
    """A record with today's keys (one of today's is returned as it is)."""
    if "symbols" in record or "chars" not in record:
        return record
    return {RENAMED.get(k, k): v for k, v in record.items()}


# What `plot` reads of a record: the keys a record must have, and those it may; and those it may that are
# lists of numbers, one per layer (layer 1 first), written at evaluations.
REQUIRED, PLOTTED = ("step", "train_loss"), ("symbols", "val_loss", "val_loss_per_char", "lr")
PLOTTED_PER_LAYER = ("W_sigma_max", "saturation")


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics file, with today's keys; a UsageError names
    the file and line of anything that is not a record (a numeric field
    that holds no number included)."""
    if not is_regular(path):
        raise UsageError(f"no metrics file: {path}" if not os.path.lexists(path) else
                         f"{path} is not a regular file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise os_failure(exc, "reading", path) from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record = parse_record(line)
        if record is None:
            raise UsageError(f"{path}:{number}: not a metrics record") from None
        records.append(record)
    if not records:
        raise UsageError(f"{path} holds no records yet")
    return records


def parse_record(line: str) -> dict | None:
    """A metrics line as a record with today's keys, or None: a JSON object
    whose required and plotted fields are numbers (bool is none)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    record = current_keys(record)
    for key in (*REQUIRED, *PLOTTED):
        value = record.get(key, 0 if key in PLOTTED else None)
        if not is_number(value):
            return None
    for key in PLOTTED_PER_LAYER:
        values = record.get(key, [0])
        if not isinstance(values, list) or not values or not all(is_number(v) for v in values):
            return None
    return record


def is_number(value) -> bool:
    """A JSON number (bool is none)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
