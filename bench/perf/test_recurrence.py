"""The sequential recurrence alone, forward and backward, per backend."""
import pytest

from rnn_gpu.backends import BackendUnavailable
from rnn_gpu.bench import MAIN_CONFIGS, our_backend
from rnn_gpu.bench.timing import recurrence_inputs


@pytest.mark.parametrize("config", MAIN_CONFIGS, ids=lambda c: "H{}-B{}-T{}".format(*c))
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("system", ["numpy", "cupy", "cupy-cublas", "opencl"])
def test_recurrence(benchmark, system, direction, config):
    H, B, T = config
    try:
        backend = our_backend(system)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    P, W, h0, G = recurrence_inputs(backend, H, B, T)
    Hs = backend.recurrence_forward(P, W, h0)

    def run():
        if direction == "forward":
            backend.recurrence_forward(P, W, h0)
        else:
            backend.recurrence_backward(G, Hs, h0, W)
        backend.synchronize()

    run()
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["us_per_step"] = benchmark.stats.stats.median / T * 1e6
