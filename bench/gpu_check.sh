#!/usr/bin/env bash
# The GPU check: on a GPU machine with CuPy (no network needed), runs the GPU
# tests and the recurrence benchmark and writes
# bench/results/gpu_check-<date>-<device>.json. Exit status 0 only if all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 bench/gpu_check.py "$@"
