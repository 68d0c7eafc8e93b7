"""Foundations every layer shares: the normalised event, setting names, redaction, the version."""
