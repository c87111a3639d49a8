"""Realistic demo data for trying chatferry out and for benchmarks."""
