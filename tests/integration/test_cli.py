"""The commands `make run` uses, run as a newcomer would: migrate, seed, seed again."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from saas.db.models import OutboxJob, OutboxStatus
from tests.support.commands import run_python, run_saas
from tests.support.servers import free_port

pytestmark = pytest.mark.long_module


def saas(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "development"}
    return run_saas(*args, env=env)


def test_upgrade_then_seed_is_idempotent(empty_sqlite_url: str) -> None:
    upgraded = saas(empty_sqlite_url, "database", "upgrade", "--no-prompt")
    assert upgraded.returncode == 0, upgraded.stderr
    first = saas(empty_sqlite_url, "seed")
    assert first.returncode == 0, first.stderr
    assert "organization acme" in first.stdout
    second = saas(empty_sqlite_url, "seed")
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout


def test_seed_is_refused_in_production(empty_sqlite_url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": empty_sqlite_url,
        "APP_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "AUTH0_DOMAIN": "tenant.eu.auth0.com",
        "AUTH0_CLIENT_SECRET": "real",
        "AUTH0_MANAGEMENT_CLIENT_SECRET": "real",
        "APP_BASE_URL": "https://app.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    result = run_saas("seed", env=env)
    assert result.returncode == 2
    assert "refusing to seed demo data" in result.stderr


def pending_jobs(database: Path) -> int:
    # The table and status from the model, so this stays true if either is renamed.
    query = f"SELECT count(*) FROM {OutboxJob.__tablename__} WHERE status = ?"  # noqa: S608
    with closing(sqlite3.connect(database, timeout=15)) as connection:
        return int(connection.execute(query, (OutboxStatus.PENDING.value,)).fetchone()[0])


# Two servers start from cold in subprocesses: slow on a loaded machine, whatever the code.
@pytest.mark.timeout(300)
def test_dev_says_where_to_go_and_stays_quiet(
    migrated_sqlite_template: Path, tmp_path: Path
) -> None:
    """`make run`'s last step as a newcomer sees it through a pipe (no terminal): the last lines
    name the sign-in page, the demo people, the mailbox and the operator console; no ANSI
    colour codes; no outbox retries because the dev IdP was not up yet."""
    database = tmp_path / "app.db"
    shutil.copyfile(migrated_sqlite_template, database)
    app_port, idp_port = free_port(), free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "STATE_DIR": str(tmp_path / "state"),
        "APP_BASE_URL": f"http://127.0.0.1:{app_port}",
        "DEVIDP_BASE_URL": f"http://127.0.0.1:{idp_port}",
        "DEVIDP_DATABASE_URL": f"sqlite:///{tmp_path / 'devidp.db'}",
        "DEVIDP_KEY_PATH": str(tmp_path / "devidp-keys.json"),
        "OUTBOX_POLL_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("NO_COLOR", None)
    env.pop("REDIS_URL", None)
    seeded = run_saas("seed", env=env)
    assert seeded.returncode == 0, seeded.stderr
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "saas.cli", "dev"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 240
            while "Ctrl-C stops both servers." not in log.read_text() and dev.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
            # Until the worker has sent the seeded organizations and members to the dev IdP:
            # any retry it needed would be in the log by then.
            while (
                pending_jobs(database)
                and "outbox_job_retry" not in log.read_text()
                and dev.poll() is None
            ):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.kill()
                pytest.fail("Ctrl-C did not stop `saas dev`:\n" + log.read_text())
    output = log.read_text()
    assert "\x1b[" not in output, output
    assert "outbox_job_retry" not in output, output
    assert "outbox_job_failed" not in output, output
    assert "Started server process" not in output, output
    # No line per request or per Auth0 sync scrolls the addresses away (LOG_LEVEL=WARNING).
    assert "[info" not in output, output
    ready = output[output.index("Demo sign-ins") : output.index("Ctrl-C stops both servers.")]
    assert "alice@acme.example" in ready
    assert f"http://127.0.0.1:{app_port}/login" in ready
    assert f"http://127.0.0.1:{app_port}/admin/" in ready
    assert f"http://127.0.0.1:{idp_port}/__dev/mailbox" in ready


def test_the_project_commands_start_without_building_the_app() -> None:
    """`saas seed`, `saas dev`, `saas devidp serve`… skip Litestar's CLI, which would build the
    whole app (every plugin, route and template) only to find them; its own commands still
    get the app."""
    probe = (
        "import sys\n"
        "from saas import cli\n"
        "sys.argv = ['saas', 'devidp', '-h']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, 'built' if 'saas.app' in sys.modules else 'not built')\n"
    )
    result = run_python("-c", probe, env={**os.environ, "APP_ENV": "test"})
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "rotate-keys" in result.stdout
    assert result.stdout.strip().endswith("exit 0 not built")
