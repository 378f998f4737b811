from __future__ import annotations

import threading
from collections.abc import Callable

from advanced_alchemy.alembic.commands import AlembicCommands

from saas.config import load_settings
from saas.db.config import create_sqlalchemy_config


def alembic_for(database_url: str) -> AlembicCommands:
    return AlembicCommands(create_sqlalchemy_config(load_settings(database_url=database_url)))


def run_in_thread(fn: Callable[[], object]) -> None:
    """Alembic's env.py calls asyncio.run(); from inside a running loop it needs a thread."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as error:  # re-raised in the caller's thread
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def upgrade(database_url: str, revision: str = "head") -> None:
    run_in_thread(lambda: alembic_for(database_url).upgrade(revision))
