"""``create_devidp_app(settings)``: the dev IdP as its own Litestar application."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy import event
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from saas.config import Settings
from saas.devidp import (
    authorize,
    discovery,
    login_pages,
    logout,
    mailbox,
    mfa,
    tenant,
    token_endpoint,
    userinfo,
)
from saas.devidp.clients import ClientSpec, default_clients
from saas.devidp.context import CSRF_COOKIE, STATIC_DIR, TEMPLATES_DIR, DevIdp, provide_db
from saas.devidp.dev_routes import (
    add_fault,
    clear_faults,
    landing,
    list_faults,
    remove_fault,
    revoke_m2m_tokens,
)
from saas.devidp.errors import EXCEPTION_HANDLERS
from saas.devidp.keys import DEFAULT_GRACE_SECONDS, KeyStore
from saas.devidp.management import management_router
from saas.devidp.models import DevIdpBase
from saas.devidp.seed import seed


def _sqlite_path(url: str) -> str | None:
    prefix = "sqlite+aiosqlite:///"
    return url[len(prefix) :] if url.startswith(prefix) else None


def create_devidp_app(
    settings: Settings,
    *,
    extra_clients: Sequence[ClientSpec] = (),
    key_grace_seconds: int = DEFAULT_GRACE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> Litestar:
    if settings.app_env == "production":
        raise RuntimeError(
            "The development IdP must never run with APP_ENV=production: it accepts a shared "
            "demo password and exposes fault injection. Use a real Auth0 tenant (AUTH0_DOMAIN)."
        )
    sqlite_path = _sqlite_path(settings.devidp_database_url)
    if sqlite_path:
        from pathlib import Path

        Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(settings.devidp_database_url)

    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    idp = DevIdp(
        settings=settings,
        engine=engine,
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        keys=KeyStore(settings.devidp_key_path, grace_seconds=key_grace_seconds),
        clock=clock,
    )
    clients = [*default_clients(settings), *extra_clients]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        idp.keys.load()
        async with engine.begin() as conn:
            await conn.run_sync(DevIdpBase.metadata.create_all)
        async with idp.sessionmaker() as db:
            await seed(db, settings, clients, idp.clock())
            await db.commit()
        try:
            yield
        finally:
            await engine.dispose()

    csrf_secret = hashlib.sha256(
        b"devidp-csrf|" + settings.secret_key.get_secret_value().encode()
    ).hexdigest()
    return Litestar(
        route_handlers=[
            landing,
            discovery.openid_configuration,
            discovery.jwks,
            authorize.authorize,
            login_pages.choose_connection,
            login_pages.connection_page,
            login_pages.submit_credentials,
            login_pages.signup_page,
            login_pages.signup,
            login_pages.organization_picker,
            login_pages.choose_organization,
            mfa.mfa_page,
            mfa.mfa_submit,
            token_endpoint.token,
            userinfo.userinfo_get,
            userinfo.userinfo_post,
            logout.auth0_logout,
            logout.oidc_logout,
            mailbox.mailbox_page,
            mailbox.mailbox_json,
            list_faults,
            add_fault,
            clear_faults,
            remove_fault,
            tenant.read_tenant,
            tenant.change_tenant,
            revoke_m2m_tokens,
            management_router(),
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
        ],
        dependencies={"db": Provide(provide_db)},
        state=State({"devidp": idp}),
        lifespan=[lifespan],
        template_config=TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine),
        csrf_config=CSRFConfig(
            secret=csrf_secret,
            cookie_name=CSRF_COOKIE,
            header_name="x-devidp-csrf",
            cookie_httponly=True,
            cookie_samesite="lax",
            cookie_secure=idp.cookie_secure,
        ),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
        debug=False,
    )
