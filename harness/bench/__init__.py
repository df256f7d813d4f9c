"""Benchmarks: each prints its numbers next to a raw baseline measured in the same run."""
