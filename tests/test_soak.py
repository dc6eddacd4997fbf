"""A short soak of faults (bench/soak.py runs the long one): a 2-rank MPI run
interrupted at random moments, resumed each time until it reaches its steps,
then checked against an uninterrupted run. Slow: each soak starts half a
dozen MPI jobs."""
import importlib.util
from pathlib import Path

import pytest
from helpers import make_corpus_text

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kinds", ["signals", "kills"])
def test_a_run_faulted_again_and_again_ends_as_an_uninterrupted_one(mpiexec, tmp_path, kinds):
    soak = load_soak()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(make_corpus_text(40_000, seed=5), encoding="utf-8")
    faults = soak.SIGNAL_FAULTS if kinds == "signals" else soak.KILL_FAULTS
    # Each fault lands within 200 steps of its attempt's checkpoint: on a fast machine the run would
    # otherwise reach its 1,500 steps before the faults planned for it.
    result = soak.soak(corpus, tmp_path / "work", steps=1500, faults=5, kinds=faults, seed=1, wait=(0.3, 1.5),
                       within_steps=200)
    assert result["failure"] is None, result["failure"]
    assert result["stderr_problems"] == []
    assert result["faults_injected"] >= 3 and result["survived"] == result["faults_injected"]
    assert result["checkpoint_loads"] >= result["faults_injected"] - 1  # a fault during start-up leaves none
    assert result["metrics_every_step_once"]
    assert result["parameters_bit_identical"], result["parameters_differing"]
    if kinds == "signals":
        assert result["steps_lost"] == 0  # each signal finished its step and wrote a checkpoint
    else:
        assert result["most_lost_at_once"] <= result["checkpoint_every"]
