"""The Python work of one recurrence call (planning, argument conversion,
the launch sequence) with the launch itself left out: what a call costs on
the host before the GPU does anything. At H=128 and T=64 the kernel itself
takes about 64 µs, so microseconds here matter."""
import numpy as np
import pytest

from rnn_gpu.kernels.plan import DeviceLimits
from rnn_gpu.kernels.runner import KernelRunner

H100_LIKE = DeviceLimits(multiprocessors=132, shared_per_block=227 * 1024, max_threads_per_block=1024,
                         cooperative=True)


class NoLaunch(KernelRunner):
    """A runner on NumPy arrays whose launches do nothing."""

    limits = H100_LIKE

    def _launch(self, plan, dtype, args, cooperative):
        pass

    def _barrier_state(self):
        return None


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_host_work_per_call(benchmark, direction):
    runner = NoLaunch()
    T, B, H = 64, 64, 128
    X = np.zeros((T, B, H), np.float32)
    W = np.zeros((H, H), np.float32)
    h0 = np.zeros((B, H), np.float32)
    out = np.empty_like(X)
    if direction == "forward":
        benchmark(lambda: runner.forward(X, W, h0, out=out))
    else:
        benchmark(lambda: runner.backward(X, X, W, out=out))
