"""Benchmark harness: `python -m bench <scenario>`; prints a table and writes a report."""
