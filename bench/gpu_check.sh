#!/usr/bin/env bash
# The GPU check: on a GPU machine with CuPy (no network needed), runs the GPU
# tests, the recurrence benchmark, PyTorch's recurrence in each precision and
# the training-step comparison, and writes one JSON file into --out-dir
# (default bench/results/gpu_check-<date>-<device>[-quick].json).
# --quick: the main shapes only, under 6 minutes on one GPU.
# Exit status 0 only if everything passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python3 -m bench.gpu_check "$@"
