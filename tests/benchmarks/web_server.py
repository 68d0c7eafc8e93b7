"""Benchmark: a real WSGI server under a concurrent client, the way a shop runs it.

gunicorn with 2 sync workers serves ``tests.benchmarks.pages`` (an order page
under a ``startproject`` site's middleware, ``tests.benchmarks.site_settings``;
the requests cycle through 50 orders) to 8 closed-loop clients
(:func:`~tests.benchmarks.loadgen.closed_loop`: keep-alive where the server
allows it; gunicorn's sync workers close after every answer, so the clients
reconnect, as behind a proxy). Five variants, each on a fresh
server and an empty outbox, in rounds (the order reversed every other round;
each figure is the median over rounds):

- the untracked page (``DELIVERY="worker"``);
- the same page writing one plain ORM row instead of tracking (the floor for any
  durable record written in the request);
- the tracked page with write-only delivery (``DELIVERY="worker"``, nothing sent);
- the tracked page with the default ``thread`` delivery, every vendor at the
  vendor stand-in answering after ``--vendor-latency-ms`` (100);
- the tracked page, write-only, plus one ``eventtrack_worker`` process on the
  same machine (the same delivery work, outside the web processes).

For the two that deliver, once the load stops the benchmark waits until the
stand-in has every tracked event from every vendor and reports the lag:
commit to "vendor received" under saturation, and the time from the end of the
load to the last arrival (the backlog drained). Everything (gunicorn, the
worker, the stand-in, the client) shares the machine's CPUs, as on one server.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks import web
from tests.benchmarks.common import (
    VENDORS,
    StandInProcess,
    base_environ,
    child_parser,
    database_description,
    distribution,
    empty_outbox,
    launch,
    median,
    ratio,
    setup_django,
    write_result,
)
from tests.benchmarks.loadgen import closed_loop

SITE_SETTINGS = "tests.benchmarks.site_settings"
CLIENTS = 8
WORKERS = 2
ORDERS = 50
#: The longest a server or worker gets to start, or to stop before it is killed.
PROCESS_TIMEOUT = 60.0


@dataclass(frozen=True)
class Variant:
    page: str
    delivery: str
    worker_process: bool = False

    @property
    def delivers(self) -> bool:
        return self.delivery == "thread" or self.worker_process


VARIANTS = {
    "untracked": Variant("untracked", "worker"),
    "one plain ORM insert": Variant("orm_insert", "worker"),
    "tracked, write-only": Variant("tracked", "worker"),
    "tracked, thread delivery": Variant("tracked", "thread"),
    "tracked, write-only + worker process": Variant("tracked", "worker", worker_process=True),
}


@contextmanager
def gunicorn(environ: Mapping[str, str], log: Path, probe: str) -> Iterator[tuple[str, int]]:
    """gunicorn serving the pages on a loopback socket of ours, ready (``probe``, a path,
    answered 200); stopped on exit."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.set_inheritable(True)
    address = ("127.0.0.1", listener.getsockname()[1])
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        f"--workers={WORKERS}",
        "--worker-class=sync",
        f"--bind=fd://{listener.fileno()}",
        "--log-level=warning",
        "tests.benchmarks.pages:application",
    ]
    with listener:
        process = launch(command, environ, log, pass_fds=(listener.fileno(),))
    with stopped_at_exit(process, log):
        connection = http.client.HTTPConnection(*address, timeout=PROCESS_TIMEOUT)
        try:
            connection.request("GET", probe)  # waits in the backlog until a worker is up
            status = connection.getresponse().status
        except OSError as error:
            raise RuntimeError(f"gunicorn did not start ({error}); see {log}") from error
        finally:
            connection.close()
        if status != 200:
            raise RuntimeError(f"gunicorn answered the page with {status}; see {log}")
        yield address


@contextmanager
def worker_process(environ: Mapping[str, str], log: Path) -> Iterator[None]:
    """``manage.py eventtrack_worker`` (the benchmark's settings) until the block ends."""
    process = launch([sys.executable, "-m", "django", "eventtrack_worker"], environ, log)
    with stopped_at_exit(process, log):
        yield


@contextmanager
def stopped_at_exit(process: subprocess.Popen[bytes], log: Path) -> Iterator[None]:
    """SIGTERM ``process`` (a graceful stop) when the block ends, SIGKILL if it lingers."""
    try:
        yield
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}; see {log}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def lag(
    standin: StandInProcess,
    answers: Sequence[Mapping[str, str]],
    load_stopped: float,
    timeout: float,
) -> dict[str, Any]:
    """Commit to received for every event the pages tracked (named in the ``answers``'
    headers), once all have arrived, and how long after the load stopped the last one
    did (``None`` if not within ``timeout``)."""
    commits = {
        int(answer["x-tracked-event"]): float(answer["x-committed-at"])
        for answer in answers
        if "x-tracked-event" in answer  # not an error page (counted in the statuses)
    }
    try:
        standin.wait_for_events(dict.fromkeys(VENDORS, len(commits)), timeout)
        drained = True
    except TimeoutError:
        drained = False
    marks = standin.marks()
    last = max((at for pairs in marks.values() for _, at in pairs), default=load_stopped)
    return {
        "events": len(commits),
        "drained": drained,
        "drain_seconds": max(last - load_stopped, 0.0) if drained else None,
        "commit_to_received_ms": distribution(web.latencies_ms(marks, commits, list(commits))),
    }


def seed_orders() -> list[int]:
    """The primary keys of ``ORDERS`` orders for the pages to show (created if missing)."""
    from tests.testapp.models import Order

    missing = ORDERS - Order.objects.count()
    Order.objects.bulk_create(
        Order(reference=f"ORD-{n:04}", status="shipped", note="Leave at the door")
        for n in range(max(missing, 0))
    )
    return list(Order.objects.order_by("pk").values_list("pk", flat=True)[:ORDERS])


def run_variant(
    variant: Variant,
    standin: StandInProcess,
    orders: Sequence[int],
    log: Path,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """One round of one variant: a fresh server on an empty outbox, loaded for ``seconds``."""
    environ = base_environ(
        os.environ["BENCH_DATABASE_URL"],
        **standin.env(),
        EVENTTRACK_DELIVERY=variant.delivery,
        DJANGO_SETTINGS_MODULE=SITE_SETTINGS,
    )
    standin.reset()
    with ExitStack() as processes:
        host, port = processes.enter_context(gunicorn(environ, log, f"/untracked/{orders[0]}"))
        if variant.worker_process:
            processes.enter_context(worker_process(environ, log))
        requests = [
            f"GET /{variant.page}/{pk} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
            for pk in orders
        ]
        run = closed_loop(
            (host, port), requests, CLIENTS, seconds, warmup, keep_headers=variant.delivers
        )
        if variant.delivers:
            timeout = max(60.0, 20 * seconds)
            run["lag"] = lag(standin, run.pop("headers"), time.time(), timeout)
    empty_outbox()
    return run


def summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The medians over rounds of one variant's figures, and the rounds themselves."""
    statuses: Counter[str] = Counter()
    for run in runs:
        statuses.update(run["statuses"])
    result: dict[str, Any] = {
        "requests_per_second": median(run["requests_per_second"] for run in runs),
        "latency_ms": {
            q: median(run["latency_ms"][q] for run in runs) for q in ("p50", "p95", "p99")
        },
        "statuses": dict(statuses),
        "rounds": runs,
    }
    lags = [run["lag"] for run in runs if "lag" in run]
    if lags:
        drains = [lag["drain_seconds"] for lag in lags if lag["drained"]]
        result["lag"] = {
            "commit_to_received_ms": {
                q: median(lag["commit_to_received_ms"][q] for lag in lags)
                for q in ("p50", "p95", "p99")
            },
            "drain_seconds": median(drains) if len(drains) == len(lags) else None,
            "drained": len(drains) == len(lags),
        }
    return result


def main() -> None:
    parser = child_parser(__doc__ or "")
    parser.add_argument("--vendor-latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    rounds, seconds, warmup = (1, 1.0, 0.5) if args.quick else (3, 6.0, 1.5)
    log = args.result.with_suffix(".servers.log")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with StandInProcess() as standin:
        standin.set_latency(args.vendor_latency_ms / 1000)
        os.environ["DJANGO_SETTINGS_MODULE"] = SITE_SETTINGS
        setup_django()  # migrates; the servers only use the tables
        orders = seed_orders()
        for round_number in range(rounds):
            order = list(VARIANTS.items())
            for name, variant in reversed(order) if round_number % 2 else order:
                runs[name].append(run_variant(variant, standin, orders, log, seconds, warmup))
    variants = {name: summary(variant_runs) for name, variant_runs in runs.items()}
    untracked, orm = variants["untracked"], variants["one plain ORM insert"]
    write_only, thread = variants["tracked, write-only"], variants["tracked, thread delivery"]
    worker = variants["tracked, write-only + worker process"]
    write_result(
        args.result,
        {
            "database": database_description(),
            "server": f"gunicorn, {WORKERS} sync workers",
            "clients": CLIENTS,
            "vendor_latency_ms": args.vendor_latency_ms,
            "rounds": rounds,
            "seconds_per_round": seconds,
            "variants": variants,
            "thread_vs_write_only_throughput": ratio(
                thread["requests_per_second"], write_only["requests_per_second"]
            ),
            "thread_vs_write_only_p50": ratio(
                thread["latency_ms"]["p50"], write_only["latency_ms"]["p50"]
            ),
            "tracked_vs_untracked_throughput": ratio(
                write_only["requests_per_second"], untracked["requests_per_second"]
            ),
            "tracked_vs_orm_insert_throughput": ratio(
                write_only["requests_per_second"], orm["requests_per_second"]
            ),
            "orm_insert_vs_untracked_throughput": ratio(
                orm["requests_per_second"], untracked["requests_per_second"]
            ),
            "worker_process_vs_thread_throughput": ratio(
                worker["requests_per_second"], thread["requests_per_second"]
            ),
        },
    )


if __name__ == "__main__":
    main()
