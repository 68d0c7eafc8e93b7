"""Helpers the multi-process tests run in subprocesses (settings, seeding)."""
