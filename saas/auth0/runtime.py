"""Building and running the outbox worker for the app and the CLI."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Litestar

from saas.auth0.management import ManagementClient
from saas.auth0.outbox import WORKER_STATE_KEY, OutboxWorker
from saas.auth0.sync import HANDLERS
from saas.config import Settings

__all__ = ("WORKER_STATE_KEY", "build_worker", "lifecycle")


def build_worker(settings: Settings, db_config: SQLAlchemyAsyncConfig) -> OutboxWorker:
    return OutboxWorker(
        db_config.create_session_maker(),
        ManagementClient(settings),
        HANDLERS,
        max_attempts=settings.outbox_max_attempts,
        poll_seconds=settings.outbox_poll_seconds,
        lease_seconds=settings.outbox_lease_seconds,
    )


def lifecycle(settings: Settings, db_config: SQLAlchemyAsyncConfig) -> tuple[object, object]:
    """on_startup / on_shutdown hooks that run the worker inside the app process."""

    async def start(app: Litestar) -> None:
        if settings.outbox_worker_enabled:
            worker = build_worker(settings, db_config)
            app.state[WORKER_STATE_KEY] = worker
            worker.start()

    async def stop(app: Litestar) -> None:
        worker: OutboxWorker | None = app.state.get(WORKER_STATE_KEY)
        if worker is not None:
            await worker.stop()
            await worker.client.aclose()

    return start, stop
