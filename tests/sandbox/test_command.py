"""``python -m django_eventtrack.sandbox``: it serves until SIGTERM with the options given,
refuses options a vendor would not have, the ``export`` lines it prints work in a real
shell, and ``--env-file`` writes a ``.env`` that django-environ reads, keeping the file's
other lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from django_eventtrack.sandbox.browsee import BROWSEE
from django_eventtrack.sandbox.hackle import HACKLE
from django_eventtrack.sandbox.hellotext import HELLOTEXT
from django_eventtrack.sandbox.primedata import PRIMEDATA
from tests.processes.helpers import free_port, wait_until
from tests.sandbox.helpers import AUTH_HEADERS, HACKLE_KEY, PATHS, ROOT


def test_command_line_serves_until_sigterm():
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "django_eventtrack.sandbox", "--port", str(port)]
    command += ["--legacy", "hellotext", "--hellotext-action", "appointment.booked"]
    command += ["--hellotext-unseen-session", "S-unseen"]
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        health = None
        deadline = time.monotonic() + 1.5
        while health is None and time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=0.5)
            except requests.exceptions.ConnectionError:
                time.sleep(0.02)
        assert health is not None, "the sandbox did not start listening"
        assert health.json() == {"ok": True}
        booked = requests.post(
            f"http://127.0.0.1:{port}/hellotext{PATHS['hellotext']}",
            json={"action": "appointment.booked", "session": "S"},
            headers=AUTH_HEADERS["hellotext"],
            timeout=2,
        )
        assert booked.status_code == 201  # the declared custom action, in the legacy answer
        unseen = {"action": "appointment.booked", "session": "S-unseen"}
        events_url = f"http://127.0.0.1:{port}/hellotext{PATHS['hellotext']}"
        headers = AUTH_HEADERS["hellotext"]
        assert requests.post(events_url, json=unseen, headers=headers, timeout=2).status_code == 404
        seed = {"vendor": "hellotext", "seen_sessions": ["S-unseen"]}
        requests.post(f"http://127.0.0.1:{port}/_sandbox/seed", json=seed, timeout=2)
        assert requests.post(events_url, json=unseen, headers=headers, timeout=2).status_code == 201

        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=1.5)
    finally:
        process.kill()
        process.wait(2)

    assert process.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}/hackle" in stdout
    assert f"EVENTTRACK_HACKLE_API_KEY={HACKLE_KEY}" in stdout
    assert f"EVENTTRACK_PRIMEDATA_API_URL=http://127.0.0.1:{port}/primedata" in stdout
    assert "legacy" in stdout


def test_a_seen_session_is_seeded_while_running_not_given_at_the_start(capfd):
    from django_eventtrack.sandbox.__main__ import build_parser
    from django_eventtrack.sandbox.server import registry_specs

    with pytest.raises(SystemExit):
        build_parser(registry_specs()).parse_args(["--hellotext-seen-session", "S"])
    assert "unrecognized arguments: --hellotext-seen-session" in capfd.readouterr().err


def test_command_line_refuses_a_custom_action_hellotext_would_not_have(capfd):
    from django_eventtrack.sandbox.__main__ import main

    assert main(["--port", "0", "--hellotext-action", "order.placed"]) == 2
    assert "one of Hellotext's own actions" in capfd.readouterr().err


@pytest.fixture
def sandbox_command(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """The command run with ``--env-file`` on a .env that already holds other lines;
    its output once it is listening, the .env, and its port."""
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=keep-me\nEVENTTRACK_HACKLE_API_URL=http://old\nDEBUG=on\n")
    port = free_port()
    log = tmp_path / "sandbox.log"
    command = [sys.executable, "-m", "django_eventtrack.sandbox", "--port", str(port)]
    command += ["--env-file", str(env_file)]
    with log.open("w") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        wait_until(lambda: "Press Ctrl-C" in log.read_text(), timeout=10, what="the banner")
        yield log.read_text(), env_file, port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(5)


def expected(port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}"
    return {
        "EVENTTRACK_HELLOTEXT_API_TOKEN": HELLOTEXT.credentials["API_TOKEN"],
        "EVENTTRACK_HELLOTEXT_API_URL": f"{url}/hellotext",
        "EVENTTRACK_HACKLE_API_KEY": HACKLE.credentials["API_KEY"],
        "EVENTTRACK_HACKLE_API_URL": f"{url}/hackle",
        "EVENTTRACK_BROWSEE_API_KEY": BROWSEE.credentials["API_KEY"],
        "EVENTTRACK_BROWSEE_API_URL": f"{url}/browsee",
        "EVENTTRACK_PRIMEDATA_CLIENT_ID": PRIMEDATA.credentials["CLIENT_ID"],
        "EVENTTRACK_PRIMEDATA_ACCESS_TOKEN": PRIMEDATA.credentials["ACCESS_TOKEN"],
        "EVENTTRACK_PRIMEDATA_API_URL": f"{url}/primedata",
    }


def eventtrack_variables(environment: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if name.startswith("EVENTTRACK_")}


def test_the_export_lines_set_the_variables_in_a_shell(
    sandbox_command: tuple[str, Path, int],
) -> None:
    output, _, port = sandbox_command
    exports = [line for line in output.splitlines() if line.startswith("export ")]
    assert len(exports) == 9
    script = "\n".join(
        [*exports, "python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'"]
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTTRACK_")}
    shell = subprocess.run(  # noqa: S603 - a fixed shell and script
        ["/bin/sh", "-c", script], env=clean, capture_output=True, text=True, check=True
    )
    assert eventtrack_variables(json.loads(shell.stdout)) == expected(port)


def test_env_file_is_read_by_django_environ_and_keeps_other_lines(
    sandbox_command: tuple[str, Path, int],
) -> None:
    output, env_file, port = sandbox_command
    assert f"Wrote the EVENTTRACK_* variables to {env_file}" in output
    lines = env_file.read_text().splitlines()
    assert lines[:2] == ["SECRET_KEY=keep-me", "DEBUG=on"]  # the project's own, untouched
    assert "EVENTTRACK_HACKLE_API_URL=http://old" not in lines  # replaced, not duplicated
    read = (
        "import environ, json, os\n"
        f"environ.Env.read_env({str(env_file)!r})\n"
        "print(json.dumps(dict(os.environ)))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTTRACK_", "SECRET"))}
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", read], env=clean, capture_output=True, text=True, check=True
    )
    environment = json.loads(result.stdout)
    assert eventtrack_variables(environment) == expected(port)
    assert environment["SECRET_KEY"] == "keep-me"
