"""pytest-benchmark micro-benchmarks of the hot path (not part of CI's test pass)."""
