"""Everything a request handler needs, built once per app: settings, DB, keys, faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from saas.config import Settings
from saas.devidp.faults import FaultBook
from saas.devidp.keys import KeyStore
from saas.devidp.rate_window import RateLimitWindow
from saas.devidp.tenant import TenantConfig

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# Lifetimes (Auth0's defaults where Auth0 has one).
CODE_TTL_SECONDS = 60
ACCESS_TOKEN_TTL_SECONDS = 86400
ID_TOKEN_TTL_SECONDS = 36000
REFRESH_TOKEN_TTL_SECONDS = 30 * 86400
SESSION_TTL_SECONDS = 3 * 86400
TRANSACTION_TTL_SECONDS = 15 * 60
SESSION_COOKIE = "devidp_session"
CSRF_COOKIE = "devidp_csrf"


@dataclass(slots=True)
class DevIdp:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    keys: KeyStore
    faults: FaultBook = field(default_factory=FaultBook)
    tenant: TenantConfig = field(default_factory=TenantConfig)
    rate_limit: RateLimitWindow = field(default_factory=RateLimitWindow)
    clock: Callable[[], float] = time.time

    # ---- URLs -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.devidp_base_url

    @property
    def issuer(self) -> str:
        # Auth0's issuer is the origin with a trailing slash; relying parties compare exactly.
        return self.base_url + "/"

    @property
    def userinfo_url(self) -> str:
        return self.base_url + "/userinfo"

    @property
    def management_audience(self) -> str:
        return self.base_url + "/api/v2/"

    @property
    def api_audience(self) -> str:
        return self.settings.auth0_audience

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")


def get_idp(state: State) -> DevIdp:
    idp: DevIdp = state.devidp
    return idp


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    """One session per request; handlers commit explicitly when they change something."""
    async with get_idp(state).sessionmaker() as session:
        yield session


# Handlers ask for the request's DB session by name (Litestar 3 style explicit dependency).
Db: TypeAlias = NamedDependency[AsyncSession]
