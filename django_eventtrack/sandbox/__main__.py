"""``python -m django_eventtrack.sandbox``: serve the vendor sandbox until Ctrl-C or SIGTERM.

It prints the settings that point the library at it, as ``export`` lines to
paste into a shell, and with ``--env-file PATH`` writes them into a ``.env`` file
(keeping that file's other lines), so a developer sees real HTTP without real vendors.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from django_eventtrack.sandbox.server import Sandbox
from django_eventtrack.sandbox.vendors import VENDORS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_eventtrack.sandbox",
        description="Serve Hellotext, Hackle, Browsee and PrimeData look-alikes on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 = any)")
    parser.add_argument(
        "--legacy",
        nargs="+",
        action="extend",
        default=[],
        choices=list(VENDORS),
        metavar="VENDOR",
        help="answer with the vendor's old documented success (hellotext, primedata)",
    )
    parser.add_argument(
        "--hellotext-action",
        nargs="+",
        action="extend",
        default=[],
        metavar="ACTION",
        help="a custom action the Hellotext business has created (lowercase noun.verb)",
    )
    parser.add_argument(
        "--primedata-schema",
        nargs="+",
        action="extend",
        default=None,
        metavar="ALIAS",
        help="an event schema registered in PrimeData; once any is given, events of other "
        "types are left out of processedEvents",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log one line per request (credentials never shown)"
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="also write the EVENTTRACK_* variables into this .env file (its other lines stay)",
    )
    return parser


def banner(sandbox: Sandbox) -> str:
    """What to configure: the URLs and the ``EVENTTRACK_*`` lines to copy."""
    lines = [f"django-eventtrack vendor sandbox listening on {sandbox.url}", ""]
    for vendor in VENDORS:
        mode = "  (legacy answers)" if vendor in sandbox.legacy else ""
        lines.append(f"  {vendor:<10} {sandbox.api_url(vendor)}{mode}")
    lines += [
        "",
        f"Control API: {sandbox.url}/_sandbox/health | requests | faults | reset | legacy",
        "",
        "Environment for the library (paste into your shell; --env-file PATH writes a .env):",
        *(f"export {name}={shlex.quote(value)}" for name, value in sandbox.env().items()),
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def write_env_file(path: Path, variables: Mapping[str, str]) -> None:
    """Set ``variables`` in the ``.env`` file at ``path`` (created if missing): lines
    setting one of them are replaced, every other line is kept as it was."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            name = line.removeprefix("export ").partition("=")[0].strip()
            if name not in variables:
                kept.append(line)
    lines = [*kept, *(f"{name}={value}" for name, value in variables.items())]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        sandbox = Sandbox(
            host=args.host,
            port=args.port,
            legacy=args.legacy,
            verbose=args.verbose,
            hellotext_actions=args.hellotext_action,
            primedata_schemas=args.primedata_schema,
        )
    except ValueError as error:
        print(f"cannot start the sandbox: {error}", file=sys.stderr)
        return 2
    try:
        sandbox.start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    if args.env_file is not None:
        write_env_file(args.env_file, sandbox.env())
        print(f"Wrote the EVENTTRACK_* variables to {args.env_file}", flush=True)
    print(banner(sandbox), flush=True)
    stopping.wait()
    sandbox.stop()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
