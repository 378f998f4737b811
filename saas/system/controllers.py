"""Health check and the public home page."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response, Template
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings

logger = structlog.get_logger("saas.health")


class SystemController(Controller):
    include_in_schema = False

    @get("/health", cache=False, opt={"public": True})
    async def health(self, db_session: NamedDependency[AsyncSession]) -> Response[dict[str, Any]]:
        try:
            await db_session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as error:
            logger.warning("health_database_failed", error=type(error).__name__)
            body = {"status": "unavailable", "checks": {"database": "failed"}}
            return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        body = {"status": "ok", "checks": {"database": "ok"}}
        return Response(body, status_code=HTTP_200_OK)

    @get("/", opt={"public": True})
    async def home(self, settings: NamedDependency[Settings]) -> Template:
        return Template(
            template_name="pages/home.html",
            context={"show_demo_hint": settings.uses_dev_idp, "idp_url": settings.auth0_base_url},
        )
