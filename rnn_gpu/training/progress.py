"""Training progress on stderr: a tqdm bar on a terminal; elsewhere (a log
file, CI) a plain status line at most every `interval` seconds, instead of
the redraws a bar writes."""
from __future__ import annotations

import sys
import time


class StatusLines:
    """The subset of tqdm's interface the trainer uses, as plain lines."""

    def __init__(self, total: int | None, initial: int, interval: float = 10.0, stream=None):
        self.total, self.n, self.interval = total, initial, interval
        self.stream = stream or sys.stderr
        self.postfix, self.description = {}, ""
        self.last = time.monotonic()
        self.closed = False

    def set_postfix(self, **values) -> None:
        self.postfix = values

    def set_description_str(self, text: str, refresh: bool = True) -> None:
        self.description = text
        if text and refresh:
            self._print()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._print()

    def _print(self) -> None:
        self.last = time.monotonic()
        of = f"/{self.total}" if self.total else ""
        values = " ".join(f"{k} {v}" for k, v in self.postfix.items())
        doing = f" ({self.description})" if self.description else ""
        print(f"step {self.n}{of}{doing} {values}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.closed and self.postfix:
            self._print()
        self.closed = True


class Silent(StatusLines):
    def _print(self) -> None:
        pass


def progress(total: int | None, initial: int, enabled: bool, stream=None):
    stream = stream or sys.stderr
    if not enabled:
        return Silent(total, initial, stream=stream)
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=stream)
    return StatusLines(total, initial, stream=stream)
