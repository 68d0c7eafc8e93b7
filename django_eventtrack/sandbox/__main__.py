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
from typing import Any

from django_eventtrack.sandbox.server import Sandbox, registry_specs
from django_eventtrack.sandbox.spec import VendorSpec


def build_parser(specs: Sequence[VendorSpec]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_eventtrack.sandbox",
        description=f"Serve look-alikes of {', '.join(spec.name for spec in specs)} on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 = any)")
    parser.add_argument(
        "--legacy",
        nargs="+",
        action="extend",
        default=[],
        choices=[spec.name for spec in specs],
        metavar="VENDOR",
        help="answer with the vendor's old documented success "
        f"({', '.join(spec.name for spec in specs if spec.has_legacy)})",
    )
    for spec in specs:
        for option in (option for option in spec.options if option.command_line):
            parser.add_argument(
                f"--{spec.name}-{option.flag}",
                dest=f"{spec.name}.{option.keyword}",
                nargs="+",
                action="extend",
                default=option.default,
                metavar=option.metavar,
                help=option.help,
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
    for vendor in sandbox.specs:
        mode = "  (legacy answers)" if vendor in sandbox.legacy else ""
        lines.append(f"  {vendor:<10} {sandbox.api_url(vendor)}{mode}")
    lines += [
        "",
        f"Control API: {sandbox.url}/_sandbox/health | requests | faults | reset | legacy | seed",
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


def _state_options(specs: Sequence[VendorSpec], args: argparse.Namespace) -> dict[str, Any]:
    """``Sandbox(options=...)`` from the ``--<vendor>-<flag>`` options given."""
    options: dict[str, Any] = {}
    for spec in specs:
        given = {
            o.keyword: getattr(args, f"{spec.name}.{o.keyword}")
            for o in spec.options
            if o.command_line
        }
        options[spec.name] = {
            keyword: value for keyword, value in given.items() if value is not None
        }
    return options


def main(argv: Sequence[str] | None = None) -> int:
    specs = registry_specs()
    args = build_parser(specs).parse_args(argv)
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
            vendors=specs,
            options=_state_options(specs, args),
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
