"""pylog's benchmark suite.

Two parts (DESIGN.md section 7):
- ``bench/test_micro_*.py``: pytest-benchmark micro benchmarks of the storage engine, run with
  ``python -m pytest bench/ --benchmark-json=bench/results/micro.json`` (not part of ``tests/``).
- ``python -m bench.compare``: pylog against its peers and the machine's own limits, in one run,
  round-robin over several rounds, reported as medians with spreads and ratios to pylog.
"""
