"""Benchmarking: `rnn-gpu bench` and the scripts in bench/.

- `systems`: what is timed (our backends, PyTorch, the seed's loop);
- `timing`: the one set of timing helpers (synchronised, warm-up excluded, medians);
- `memory`: peak memory probes;
- `report`: tables, markdown and plots;
- `runs`: one system at one configuration, or the whole comparison grid.
"""
from .baselines import make_seed_step, make_torch_step, torch_unavailable_reason
from .report import format_table, machine
from .runs import compare, result_row, run_one
from .systems import (
                      COMPARE_CONFIGS,
                      MAIN_CONFIGS,
                      OUR_SYSTEMS,
                      SEED_SHAPE,
                      SYSTEMS,
                      VOCAB,
                      System,
                      flops_per_char,
                      make_system,
                      our_backend,
)

__all__ = ["COMPARE_CONFIGS", "MAIN_CONFIGS", "OUR_SYSTEMS", "SEED_SHAPE", "SYSTEMS", "VOCAB", "System", "compare",
           "flops_per_char", "format_table", "machine", "make_seed_step", "make_system", "make_torch_step",
           "our_backend", "result_row", "run_one", "torch_unavailable_reason"]
