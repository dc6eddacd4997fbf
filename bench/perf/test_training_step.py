"""One full training step (forward, loss, BPTT, clipping, Adagrad) per
system and configuration; systems that cannot run here are skipped.
Compare systems within one run: `pytest bench --benchmark-only
--benchmark-group-by=param:config`."""
import pytest

from rnn_gpu.backends import BackendUnavailable
from rnn_gpu.bench import MAIN_CONFIGS, SEED_SHAPE, SYSTEMS, make_system


@pytest.mark.parametrize("config", [*MAIN_CONFIGS, SEED_SHAPE], ids=lambda c: "H{}-B{}-T{}".format(*c))
@pytest.mark.parametrize("system", SYSTEMS)
def test_training_step(benchmark, system, config):
    H, B, T = config
    try:
        s = make_system(system, H, B, T)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))

    def step():
        s.step()
        s.sync()

    step()  # warm-up: compilation, caches, memory pools
    benchmark.extra_info["chars_per_step"] = s.chars_per_step
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["chars_per_s"] = s.chars_per_step / benchmark.stats.stats.median
