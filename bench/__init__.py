"""Measurement scripts, run from the repository root as `python -m bench.NAME`
(gpu_check, recurrence_long, scaling, scaling_model, validation_time,
prepare_large, profile_kernels, barrier_probe) against the installed
`rnn_gpu`; `bench/perf/` holds the pytest-benchmark suite
(`pytest bench --benchmark-only`) and `bench/results/` what the runs wrote."""
