"""The request threads a drain sends each vendor's requests from (:class:`RequestThreads`).

Not a ``concurrent.futures.ThreadPoolExecutor``: the executor refuses new work as
soon as the main thread has finished, before ``atexit`` handlers run, and that is
exactly when the ``thread`` backend sends what a script or command committed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")

#: A submitted call and the future that gets its result.
_Call = tuple[Future[Any], Callable[[], Any]]


class RequestThreads:
    """Up to ``size`` daemon threads running the calls submitted, each answered by a Future.

    A thread starts when a call finds every thread busy. When the interpreter
    refuses to start one (Python 3.12 does in ``atexit`` handlers) and none runs,
    the caller's thread runs the call itself: sending at exit slows down but still
    happens. :meth:`close` cancels the calls not started and waits for those
    running, so no request is in flight once a claim's rows are given back. A
    thread closes its database connections when it ends.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._busy_lock:
            self._busy += 1
            wanted = self._busy > len(self._threads)
        if wanted and len(self._threads) < self._size:
            self._start_thread()
        if self._threads:
            self._calls.put((future, call))
        else:
            self._run((future, call))
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            self._size = len(self._threads)
            return
        self._threads.append(thread)

    def _serve(self) -> None:
        try:
            while (call := self._calls.get()) is not None:
                self._run(call)
        finally:
            connections.close_all()

    def _run(self, call: _Call) -> None:
        future, function = call
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = function()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def close(self) -> None:
        """Cancel the calls not started, wait for those running, end the threads."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call[0].cancel()
                with self._busy_lock:
                    self._busy -= 1
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def __enter__(self) -> RequestThreads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
