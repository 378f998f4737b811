"""The `saas` command: Litestar's CLI with this app loaded, plus the project's commands.

`saas database upgrade` (migrations) comes from Advanced Alchemy; `saas seed`, `saas dev` and
the operator commands are defined here, and run without the app being built (`main`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import click

from saas.config import ConfigurationError, Settings, load_settings


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


async def _run_seed(settings: Settings) -> list[str]:
    from saas.db.config import standalone_session
    from saas.demo.seed import seed_demo_data

    async with standalone_session(settings) as session:
        report = await seed_demo_data(session)
        await session.commit()
    return report.created


@click.command(name="seed", help="Insert the demo organizations and users (idempotent).")
def seed_command() -> None:
    settings = _settings_or_exit()
    if settings.is_production:
        click.echo("error: refusing to seed demo data when APP_ENV=production", err=True)
        sys.exit(2)
    created = asyncio.run(_run_seed(settings))
    if created:
        for line in created:
            click.echo(f"  + {line}")
        click.echo(f"seeded {len(created)} records")
    else:
        click.echo("demo data already present; nothing changed")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


READY_TIMEOUT_SECONDS = 120.0


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll `url` until it answers below 500, the process ends, or `timeout` passes."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@click.command(name="dev", help="Run the app and the development IdP together (Ctrl-C stops both).")
def dev_command() -> None:
    """The dev IdP first, the app once it answers (so the app's outbox worker never starts
    against an IdP that is not up yet, and logs no retries for it), then where to go.

    Quiet on purpose: the servers' own start-up and access lines are off (the app logs its own
    request lines), and the last lines printed say what to open."""
    settings = _settings_or_exit()
    if settings.is_production:
        click.echo("error: `saas dev` is for development; use a process manager in production")
        sys.exit(2)
    # Ctrl-C stops both servers even when this was started with SIGINT ignored (a parent that
    # ignores it passes that on through exec: a test runner's worker, some shells' jobs).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host, port = _host_port(settings.app_base_url)
    app_command = [
        sys.executable,
        "-m",
        "uvicorn",
        "saas.asgi:app",
        "--host",
        host,
        "--port",
        str(port),
        # The app writes its own one-line access log (with request ids), so uvicorn need not.
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    click.echo("starting…")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if settings.uses_dev_idp:
            idp = subprocess.Popen([sys.executable, "-m", "saas.cli", "devidp", "serve", "--quiet"])
            processes.append(idp)
            discovery = settings.devidp_base_url + "/.well-known/openid-configuration"
            if not _wait_until_ready(discovery, idp, READY_TIMEOUT_SECONDS):
                click.echo(
                    f"error: the development IdP did not start on {settings.devidp_base_url}"
                )
                _stop(processes)
                sys.exit(1)
        # Warnings and errors only, unless LOG_LEVEL says otherwise: a line per request (and
        # per Auth0 sync) would scroll the addresses printed below out of sight at once.
        app_env = {**os.environ, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
        app = subprocess.Popen(app_command, env=app_env)  # noqa: S603
        processes.insert(0, app)
        if not _wait_until_ready(settings.app_base_url + "/health", app, READY_TIMEOUT_SECONDS):
            click.echo(f"error: the app did not start on {settings.app_base_url}")
            _stop(processes)
            sys.exit(1)
        _print_where_to_go(settings)
        while all(process.poll() is None for process in processes):
            try:
                processes[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    finally:
        _stop(processes)
    sys.exit(max((p.returncode or 0) for p in processes) if processes else 0)


def _print_where_to_go(settings: Settings) -> None:
    """The last lines `make run` prints: the demo people, then the addresses to open."""
    _print_login_hints(settings)
    base = settings.app_base_url
    click.echo("Ready. Open:")
    click.echo(f"  sign in           {base}/login")
    click.echo(f"  operator console  {base}/admin/  (as olivia@ops.example)")
    if settings.uses_dev_idp:
        click.echo(
            f"  mailbox           {settings.devidp_base_url}/__dev/mailbox  (invitation emails)"
        )
        click.echo(f"  dev IdP           {settings.devidp_base_url}")
    click.echo("Ctrl-C stops both servers.", nl=True)
    sys.stdout.flush()


def _print_login_hints(settings: Settings) -> None:
    from saas.demo import data as demo_data

    if not settings.uses_dev_idp:
        return
    click.echo(f"\nDemo sign-ins (development IdP, password for all: {demo_data.DEMO_PASSWORD}):")
    for user in demo_data.USERS:
        roles = ", ".join(f"{role} of {org}" for org, role in user.memberships.items())
        operator = " (platform operator)" if user.platform_operator else ""
        click.echo(f"  {user.email:<24} {roles}{operator}")
    click.echo("")


async def _run_outbox(settings: Settings, once: bool) -> int:
    from saas.auth0.runtime import build_worker
    from saas.db.config import create_sqlalchemy_config

    config = create_sqlalchemy_config(settings)
    worker = build_worker(settings, config)
    try:
        if once:
            return await worker.drain()
        worker.start()
        await asyncio.Event().wait()  # until Ctrl-C
        return 0
    finally:
        await worker.stop()
        await worker.client.aclose()
        await config.get_engine().dispose()


@click.group(name="outbox", help="The queue of changes that keeps Auth0 in step.")
def outbox_group() -> None:
    pass


@outbox_group.command(name="run", help="Drain the outbox (several workers may run at once).")
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
def outbox_run(once: bool) -> None:
    settings = _settings_or_exit()
    try:
        processed = asyncio.run(_run_outbox(settings, once))
    except KeyboardInterrupt:
        return
    click.echo(f"processed {processed} jobs")


def register_commands(cli: click.Group) -> None:
    cli.add_command(seed_command)
    cli.add_command(dev_command)
    cli.add_command(outbox_group)
    from saas.organizations.cli import operators, orgs

    cli.add_command(orgs)
    cli.add_command(operators)
    try:
        from saas.devidp.cli import devidp
    except ImportError:  # the dev IdP package is optional in slimmed-down forks
        return
    cli.add_command(devidp)


def _project_group() -> click.Group:
    # `-h` as well, as Litestar's CLI has it.
    group = click.Group(name="saas", context_settings={"help_option_names": ["-h", "--help"]})
    register_commands(group)
    return group


def main() -> None:
    _settings_or_exit()  # one clear line for bad configuration, before any traceback can happen
    project = _project_group()
    if len(sys.argv) > 1 and sys.argv[1] in project.commands:
        # None of the project's own commands needs the app: Litestar's CLI would build it
        # (every plugin, route and template, seconds of start-up) only to find them.
        # `saas --help` and Litestar's commands still go through Litestar's CLI, where the
        # plugin registers the same commands (saas.plugin.on_cli_init).
        project.main(args=sys.argv[1:], prog_name="saas")
        return
    os.environ.setdefault("LITESTAR_APP", "saas.asgi:app")
    from litestar.cli.main import litestar_group

    litestar_group()


if __name__ == "__main__":
    main()
