"""Benchmarks: the ``bench`` and ``demo`` commands, timing scripts and committed reference results."""
