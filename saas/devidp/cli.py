"""``devidp`` click group: ``serve`` and ``rotate-keys``. Wired into the main CLI elsewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from saas.config import is_loopback_host, load_settings
from saas.devidp.keys import DEFAULT_GRACE_SECONDS, KeyStore


@click.group(name="devidp", help="The embedded Auth0-compatible development IdP.")
def devidp() -> None:
    pass


@devidp.command(name="serve", help="Run the dev IdP on the host and port of DEVIDP_BASE_URL.")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
@click.option(
    "--quiet", is_flag=True, help="Log warnings and errors only (no start-up or access lines)."
)
def serve(reload: bool, quiet: bool) -> None:
    import uvicorn

    from saas.devidp.app import create_devidp_app

    settings = load_settings()
    parts = urlsplit(settings.devidp_base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not is_loopback_host(host):
        # Every enterprise account here shares one demo password: never listen beyond loopback.
        raise click.ClickException(f"the development IdP only listens on loopback, not {host!r}")
    if reload:
        uvicorn.run("saas.devidp.cli:_app_factory", host=host, port=port, reload=True, factory=True)
        return
    # Fails fast (RuntimeError) when APP_ENV=production.
    uvicorn.run(
        create_devidp_app(settings),
        host=host,
        port=port,
        proxy_headers=False,
        log_level="warning" if quiet else "info",
    )


def _app_factory():  # type: ignore[no-untyped-def]  # uvicorn --reload needs an import path
    from saas.devidp.app import create_devidp_app

    return create_devidp_app(load_settings())


@devidp.command(
    name="rotate-keys", help="Make a new signing key active; keep the old one published."
)
@click.option(
    "--grace-seconds",
    type=int,
    default=DEFAULT_GRACE_SECONDS,
    show_default=True,
    help="How long retired keys stay in the JWKS before they are dropped.",
)
def rotate_keys(grace_seconds: int) -> None:
    settings = load_settings()
    if settings.app_env == "production":
        raise click.ClickException("the development IdP is not available with APP_ENV=production")
    store = KeyStore(settings.devidp_key_path, grace_seconds=grace_seconds)
    new = store.rotate()
    published = [key.kid for key in store.published()]
    click.echo(f"active signing key: {new.kid}")
    click.echo(f"published in JWKS: {', '.join(published)}")
