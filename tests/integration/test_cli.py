"""The commands `make run` uses, run as a newcomer would: migrate, seed, seed again."""

from __future__ import annotations

import os
import subprocess
import sys


def saas(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "development"}
    return subprocess.run(
        [sys.executable, "-m", "saas.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
    result = subprocess.run(
        [sys.executable, "-m", "saas.cli", "seed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to seed demo data" in result.stderr
