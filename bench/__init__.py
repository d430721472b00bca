"""Benchmarks: ``python -m bench`` runs them all, ``python -m bench NAME`` one of them.

Each benchmark is a module of this package with a ``run(sizes)`` function, ``NAME``,
``DEFAULT_SIZES`` and ``QUICK_SIZES``; it prints its figures, ours beside a baseline measured
in the same run, and returns 0 (or 1 when a count did not match). See bench/README.md.
"""
