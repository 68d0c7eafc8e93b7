"""A tiny app with models for the model-hook tests."""
