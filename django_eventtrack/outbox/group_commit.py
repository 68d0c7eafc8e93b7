"""A sender's writes on SQLite, several to one transaction (one disk flush)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections, transaction


@dataclass
class _Write:
    """One sender's write waiting for its turn in a shared SQLite transaction."""

    run: Callable[[], int]
    result: int = 0
    error: BaseException | None = None
    done: bool = False


class _GroupCommit:
    """This process's sender writes to SQLite, several to a transaction.

    SQLite has one write lock, every commit waits for the disk, and a writer
    waiting for the lock sleeps in SQLite's busy handler (up to 100 ms) however
    soon the lock is free. So a thread queues its write, and whichever thread holds
    the turn commits everything queued in one transaction (one disk flush), each
    write in a savepoint of its own so that a failing write fails alone.
    ``track()`` never comes here: it writes in the caller's transaction.
    """

    def __init__(self) -> None:
        self._turn = threading.Lock()
        self._queued_lock = threading.Lock()
        self._queued: list[_Write] = []

    def write(self, alias: str, run: Callable[[], int]) -> int:
        mine = _Write(run)
        with self._queued_lock:
            self._queued.append(mine)
        with self._turn:
            if not mine.done:
                with self._queued_lock:
                    batch, self._queued = self._queued, []
                _commit_together(alias, batch)
        if mine.error is not None:
            raise mine.error
        return mine.result


def _commit_together(alias: str, batch: list[_Write]) -> None:
    """Run ``batch`` in one transaction; each write gets its result or its error."""
    try:
        with transaction.atomic(using=alias):
            for write in batch:
                try:
                    with transaction.atomic(using=alias):
                        write.result = write.run()
                except Exception as exc:
                    write.error = exc
    except BaseException as exc:  # not committed: every write in it failed
        for write in batch:
            write.error = write.error or exc
    finally:
        for write in batch:
            write.done = True


_groups: dict[str, _GroupCommit] = {}


_groups_lock = threading.Lock()


def _forget_groups() -> None:
    """A forked child starts with no queue and no turn held by its parent's threads."""
    global _groups_lock
    _groups.clear()
    _groups_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_groups)


def sender_write(alias: str, run: Callable[[], int]) -> int:
    """Run a sender's write (``run``) on ``alias``; grouped with others on SQLite,
    unless the caller is inside a transaction of its own (the admin's actions):
    then it runs there, seeing and joining that transaction."""
    connection = connections[alias]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return run()
    with _groups_lock:
        group = _groups.setdefault(alias, _GroupCommit())
    return group.write(alias, run)


def write_together(alias: str, run: Callable[[], int]) -> int:
    """Run ``run``'s writes in one transaction (on SQLite, with those of this process's
    other senders queued meanwhile: :class:`_GroupCommit`)."""
    connection = connections[alias]
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        return sender_write(alias, run)
    with transaction.atomic(using=alias):
        return run()
