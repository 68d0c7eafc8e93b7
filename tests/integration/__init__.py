"""Integration suites: the ``celery`` and ``tasks`` backends and PostgreSQL, against real
servers and worker processes (see conftest.py for how servers are found or started)."""
