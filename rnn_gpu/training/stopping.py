"""How a run stops: the stop signals, recorded while a step runs; the flags
the ranks agree on one step late; and the check that a run's loss and
gradients stayed finite."""
from __future__ import annotations

import signal

import numpy as np

from ..errors import STOP_SIGNALS, Diverged

# What the ranks agree on over the host, one step late: what step n raises stops every rank after step n + 1.
FLAGS = (*(s.name.lower() for s in STOP_SIGNALS), "time_up")


class StopSignals:
    """While active, the stop signals only record that they came."""

    def __enter__(self):
        self.received = None
        self.previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}
        return self

    def _record(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def stop_flags(signal_received: int | None, elapsed: float, time_limit: float | None) -> list:
    """This rank's FLAGS after a step: a stop signal came, the run's time is up."""
    return [*(signal_received == s for s in STOP_SIGNALS), time_limit is not None and elapsed >= time_limit]


class FlagExchange:
    """The stop flags of every rank, exchanged while the next step runs."""

    def __init__(self, comm):
        self.comm, self.pending = comm, None  # the exchange in flight (comm.start_allreduce_max)

    def __call__(self, flags=None) -> tuple[int | None, bool]:
        """Sends a step's host flags (`stop_flags`; None at the end) and
        returns the ones every rank sent at the step before: (the stop signal
        that came, if any; the time is up). What any rank raises after step
        n stops every rank after step n + 1."""
        pending = self.pending
        self.pending = None if flags is None else self.comm.start_allreduce_max(np.array(flags, dtype=np.int32))
        if pending is None:
            return None, False
        *came, time_up = pending.wait()
        return next((s for s, flag in zip(STOP_SIGNALS, came, strict=True) if flag), None), bool(time_up)


def check_health(counts, skip_nonfinite: bool, flags: FlagExchange) -> int:
    """The steps skipped so far as not finite, from the device's counts
    (skipped, the first such step, whether its loss was the bad value).
    Without `skip_nonfinite`, any such step ends the run (Diverged) here,
    on every rank alike, before anything else is written."""
    skipped, first, loss_bad = (int(v) for v in counts)
    if skipped and not skip_nonfinite:
        flags()  # every rank stops here: complete the exchange in flight
        raise Diverged(f"non-finite {'loss' if loss_bad else 'gradient'} at step {first}")
    return skipped
