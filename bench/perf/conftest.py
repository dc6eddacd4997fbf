"""pytest-benchmark suite: `pytest bench --benchmark-only`. Kept out of the
default test run (tests/ is the default path)."""
