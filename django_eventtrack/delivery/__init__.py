"""Delivery: the backends that react to a commit, the one sender loop, the worker,
the Tasks-framework backend and the HTTP transport the vendors share."""
