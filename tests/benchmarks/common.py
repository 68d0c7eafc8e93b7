"""What every benchmark shares: statistics, child processes, the sandbox process, Django setup.

Each benchmark runs in a process of its own (``python -m tests.benchmarks.<name>``)
configured through the environment like a deployment, and writes its result as
JSON to the path given with ``--result``; the runner (``__main__``) collects them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[2]
VENDORS = ("hellotext", "hackle", "browsee", "primedata")
#: A child that runs longer than this is killed and reported as failed.
CHILD_TIMEOUT = 900.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, mean and count of ``values`` (same unit as the values)."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (NaN for none): what a figure repeated over rounds reports."""
    ordered = list(values)
    return statistics.median(ordered) if ordered else float("nan")


def environment() -> dict[str, Any]:
    """Where the numbers come from: they only compare within one run on one machine."""
    import sqlite3

    import django
    import requests

    return {
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "django": django.get_version(),
        "requests": requests.__version__,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# --- child processes ---------------------------------------------------------------------------


def base_environ(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a benchmark child: no stray ``EVENTTRACK_*`` from the caller."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTTRACK_")}
    environ |= {
        "DJANGO_SETTINGS_MODULE": "tests.benchmarks.settings",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    if database_url is not None:
        environ["BENCH_DATABASE_URL"] = database_url
    return environ | extra


def run_child(
    module: str,
    args: Sequence[str],
    environ: Mapping[str, str],
    result_path: Path,
    timeout: float = CHILD_TIMEOUT,
) -> dict[str, Any]:
    """Run ``python -m module args --result result_path``; return the JSON it wrote.

    Its output goes to ``result_path`` with ``.log``, named in the error if it fails.
    """
    log = result_path.with_suffix(".log")
    log.unlink(missing_ok=True)
    process = launch(
        [sys.executable, "-m", module, *args, "--result", str(result_path)], environ, log
    )
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    if returncode != 0 or not result_path.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{module} exited with {returncode}; log {log}:\n{tail}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def launch(
    command: Sequence[str], environ: Mapping[str, str], log: Path, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """Start ``command`` (our interpreter) from the project root, its output appended to
    ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            command,
            env=dict(environ),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
        )


def child_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark child takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--result", type=Path, required=True, help="write the JSON result here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile here")
    return parser


def write_result(path: Path, result: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2, default=str))


def setup_django(*, flush: bool = True) -> str:
    """``django.setup()``, migrate, and empty the outbox; returns the database vendor."""
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    if flush:
        empty_outbox()
    return str(connection.vendor)


def empty_outbox() -> None:
    """Delete every event and delivery: the next measurement starts from an empty outbox."""
    from django_eventtrack.models import Delivery, Event

    Delivery.objects.all().delete()
    Event.objects.all().delete()


def database_description() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version} (file)"


def profiled(path: Path | None, work: Callable[[], Any]) -> Any:
    """Run ``work``, under pyinstrument when ``path`` is given (text report to ``path``)."""
    if path is None:
        return work()
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        return work()
    finally:
        profiler.stop()
        path.write_text(profiler.output_text(unicode=True, show_all=False))


# --- vendor servers in a process of their own ---------------------------------------------------


def serve_commands(url: str, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The server-process side of :class:`SandboxProcess`: print ``{"url": url}``, then
    answer each JSON command read from stdin with one JSON line, until stdin closes."""
    print(json.dumps({"url": url}), flush=True)
    for line in sys.stdin:
        try:
            reply = answer(json.loads(line))
        except (ValueError, TypeError, KeyError) as error:
            reply = {"error": str(error)}
        print(json.dumps(reply), flush=True)


class SandboxProcess:
    """The vendor sandbox in its own process (its own GIL and CPU), driven over a pipe.

    ``module`` (``tests.benchmarks.sandbox_process`` here) answers one JSON
    command per line (:func:`serve_commands`); closing its stdin stops it, so it
    never outlives the benchmark.
    """

    module = "tests.benchmarks.sandbox_process"

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", self.module],
            env=base_environ(),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self._read()["url"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        self.process = None

    def _read(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **arguments}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"sandbox: {answer['error']}")
        return answer

    def env(self, vendors: Iterable[str] | None = None) -> dict[str, str]:
        """``EVENTTRACK_*`` for ``vendors`` (default every registered one), pointed at this
        server."""
        from django_eventtrack.sandbox import registry_specs

        wanted = None if vendors is None else set(vendors)
        environ = {}
        for spec in registry_specs():
            if wanted is not None and spec.name not in wanted:
                continue
            vendor = spec.name
            for key, value in spec.credentials.items():
                environ[f"EVENTTRACK_{vendor.upper()}_{key}"] = value
            environ[f"EVENTTRACK_{vendor.upper()}_API_URL"] = f"{self.url}/{vendor}"
        return environ

    def reset(self) -> None:
        self.command("reset")

    def accepted_counts(self) -> dict[str, int]:
        """Accepted events per vendor (PrimeData batches counted per event)."""
        counts: dict[str, int] = self.command("counts")["accepted_events"]
        return counts

    def marks(self) -> dict[str, list[list[float]]]:
        """Per vendor, ``[n, received_at]`` for every accepted event (``n`` property)."""
        marks: dict[str, list[list[float]]] = self.command("marks")["marks"]
        return marks

    def wait_for_events(self, expected: Mapping[str, int], timeout: float) -> dict[str, int]:
        """Poll until each vendor accepted ``expected[vendor]`` events; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.accepted_counts()
            if all(counts.get(vendor, 0) >= n for vendor, n in expected.items()):
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"after {timeout}s the sandbox had {counts}, expected {expected}"
                )
            time.sleep(0.05)


class StandInProcess(SandboxProcess):
    """The vendor stand-in (``tests.benchmarks.vendor_standin``): every vendor's endpoints,
    answered 200 after :meth:`set_latency` seconds, nothing validated."""

    module = "tests.benchmarks.vendor_standin"

    def set_latency(self, seconds: float) -> None:
        self.command("latency", seconds=seconds)


def exactly_once(marks: Mapping[str, Iterable[Sequence[float]]], count: int) -> dict[str, Any]:
    """Per vendor: how many of events ``0..count-1`` were lost or received more than once."""
    report: dict[str, Any] = {}
    for vendor, pairs in marks.items():
        seen: dict[int, int] = {}
        for pair in pairs:
            seen[int(pair[0])] = seen.get(int(pair[0]), 0) + 1
        report[vendor] = {
            "lost": sum(1 for n in range(count) if n not in seen),
            "duplicated": sum(1 for times in seen.values() if times > 1),
        }
    return report
