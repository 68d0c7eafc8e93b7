"""Benchmarks: ``python -m tests.benchmarks [--quick]`` (see ``__main__``).

Not part of the test run: no module here is named ``test_*``, so pytest never
collects or imports them; ``tests/test_benchmarks_smoke.py`` runs the quick mode
of the cheapest ones to keep them working.
"""
