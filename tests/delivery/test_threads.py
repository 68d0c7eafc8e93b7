"""The request threads a drain sends from: a bounded pool that still runs at interpreter exit."""

from __future__ import annotations

import functools
import threading

import pytest

from django_eventtrack.delivery.threads import RequestThreads
from tests.processes.helpers import wait_until


def test_calls_run_on_at_most_size_threads_each_answered_by_its_future() -> None:
    release = threading.Event()
    ran_on: list[str] = []

    def call(n: int) -> int:
        ran_on.append(threading.current_thread().name)
        release.wait(5)
        if n == 3:
            raise ValueError("three")
        return n

    with RequestThreads(2, "test-pool") as threads:
        futures = [threads.submit(functools.partial(call, n)) for n in range(4)]
        wait_until(lambda: len(ran_on) == 2, what="two calls running")
        assert [future.running() for future in futures[2:]] == [False, False]  # queued
        release.set()
        assert [future.result(5) for future in futures[:3]] == [0, 1, 2]
        with pytest.raises(ValueError, match="three"):
            futures[3].result(5)
    assert set(ran_on) == {"test-pool-0", "test-pool-1"}


def test_close_cancels_the_calls_not_started_and_waits_for_those_running() -> None:
    """So no request is still in flight when a drain gives its claim's rows back."""
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "answered"

    threads = RequestThreads(1, "test-pool")
    running = threads.submit(slow)
    waiting = threads.submit(lambda: "never")
    assert started.wait(5)
    threading.Timer(0.1, release.set).start()
    threads.close()
    assert running.done()
    assert running.result() == "answered"
    assert waiting.cancelled()


def test_the_callers_thread_runs_a_call_when_no_thread_may_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.12 refuses new threads in ``atexit`` handlers, where the ``thread``
    backend sends what a script committed: sending slows down but still happens."""
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("test-pool"):
            raise RuntimeError("can't create new thread at interpreter shutdown")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    with RequestThreads(4, "test-pool") as threads:
        future = threads.submit(lambda: threading.current_thread().name)
        assert future.result(0) == threading.current_thread().name
