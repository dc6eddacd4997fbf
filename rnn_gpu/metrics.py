"""DIR/metrics.jsonl: one JSON object per logged step, written by training
and read by `rnn-gpu plot`."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import EnvironmentFailure, UsageError
from .fileio import describe_os_error, open_for_append


class MetricsLog:
    """Appends one JSON object per logged step, flushed as it goes. The file
    is made at the first record, so a run that fails before its first step
    leaves no empty log behind."""

    def __init__(self, path: Path, append: bool):
        self.path, self.append, self.file = path, append, None

    def write(self, **record) -> None:
        if self.file is None:
            self.file = open_for_append(self.path, self.append)
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            raise EnvironmentFailure(describe_os_error(exc, "writing", self.path)) from None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        raise UsageError(f"no metrics file: {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            float(record["step"]), float(record["train_loss"])
        except (ValueError, TypeError, KeyError):
            raise UsageError(f"{path}:{number}: not a metrics record") from None
        records.append(record)
    if not records:
        raise UsageError(f"{path} holds no records yet")
    return records
