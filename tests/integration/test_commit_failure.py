"""A write whose COMMIT fails is answered as a failure, with nothing written, on every path.

The database is made to refuse the commit itself, not an earlier statement: an insert of a
project named "Tripwire" also inserts a row that breaks a foreign key checked only at commit
(DEFERRABLE INITIALLY DEFERRED, on both databases). Every statement of the request succeeds;
the COMMIT fails, as a commit racing a conflicting one, or a server that goes away, does.
PostgreSQL can also refuse a commit for a reason that is not a conflict (a deferred constraint
trigger that raises); SQLite defers only foreign keys, so that case is PostgreSQL's alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from saas.config import Settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import AuditEvent, Project
from tests.support.stack import Browser, Stack
from tests.support.tokens import access_token_for

ACME = "org_AcmeDemo00000001"
PROBLEM_JSON = "application/problem+json"
FLASH = 'data-testid="flash"'
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')

_DEFERRED_FOREIGN_KEY = [
    "CREATE TABLE commit_tripwire_target (id INTEGER PRIMARY KEY)",
    "CREATE TABLE commit_tripwire (target_id INTEGER REFERENCES commit_tripwire_target (id)"
    " DEFERRABLE INITIALLY DEFERRED)",
]
TRIPWIRES: dict[str, dict[str, list[str]]] = {
    "sqlite": {
        "conflict": [
            *_DEFERRED_FOREIGN_KEY,
            "CREATE TRIGGER trip_at_commit AFTER INSERT ON projects"
            " WHEN NEW.name = 'Tripwire'"
            " BEGIN INSERT INTO commit_tripwire (target_id) VALUES (1); END",
        ],
    },
    "postgresql": {
        "conflict": [
            *_DEFERRED_FOREIGN_KEY,
            "CREATE FUNCTION trip_at_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO commit_tripwire (target_id) VALUES (1); RETURN NEW; END $$",
            "CREATE TRIGGER trip_at_commit AFTER INSERT ON projects FOR EACH ROW"
            " WHEN (NEW.name = 'Tripwire') EXECUTE FUNCTION trip_at_commit()",
        ],
        "failure": [
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
            "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON projects"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            " WHEN (NEW.name = 'Tripwire') EXECUTE FUNCTION refuse_at_commit()",
        ],
    },
}
REMOVE = [
    "DROP TRIGGER IF EXISTS trip_at_commit{on}",
    "DROP TRIGGER IF EXISTS refuse_at_commit{on}",
    "DROP TABLE IF EXISTS commit_tripwire",
    "DROP TABLE IF EXISTS commit_tripwire_target",
]
# What each kind of failed commit is answered with: the conflict as any other conflict.
EXPECTED_STATUS = {"conflict": 409, "failure": 500}


def backend(settings: Settings) -> str:
    return "postgresql" if settings.is_postgres else "sqlite"


async def run_sql(settings: Settings, statements: list[str]) -> None:
    engine = create_sqlalchemy_config(settings).get_engine()
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def remove_tripwires(settings: Settings) -> None:
    on = " ON projects" if settings.is_postgres else ""
    statements = [statement.format(on=on) for statement in REMOVE]
    if settings.is_postgres:
        statements += [
            "DROP FUNCTION IF EXISTS trip_at_commit()",
            "DROP FUNCTION IF EXISTS refuse_at_commit()",
        ]
    await run_sql(settings, statements)


async def count(settings: Settings, statement: Any) -> int:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            return int(await session.scalar(statement) or 0)
    finally:
        await config.get_engine().dispose()


pytestmark = pytest.mark.stack(outbox_worker_enabled=False)


@contextmanager
def signed_in(stack: Stack) -> Iterator[tuple[Browser, str, str]]:
    browser = stack.browser()
    page = browser.login("alice@acme.example")
    token = _META_CSRF.search(page.text)
    assert token
    try:
        yield browser, token[1], access_token_for(browser, ACME)
    finally:
        browser.close()


def create_project(
    stack: Stack, browser: Browser, csrf: str, bearer: str, path: str, name: str
) -> httpx.Response:
    if path == "api":
        return browser.client.post(
            stack.app_url + "/api/v1/orgs/acme/projects/",
            json={"name": name},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    headers = {"HX-Request": "true", "X-CSRFToken": csrf} if path == "htmx" else {}
    return browser.client.post(
        stack.app_url + "/o/acme/projects/",
        data={"name": name, "_csrf_token": csrf},
        headers={"accept": "text/html", **headers},
    )


PATHS = ["api", "form", "htmx"]
# What each path answers when the commit succeeds: the form's answer is a redirect.
SUCCESS = {"api": 201, "form": 303, "htmx": 200}


async def test_a_failed_commit_is_an_error_answer_with_nothing_written(stack: Stack) -> None:
    settings = stack.settings
    with signed_in(stack) as (browser, csrf, bearer):
        # Writes that commit are answered as before, the form's redirect included.
        for path in PATHS:
            created = create_project(stack, browser, csrf, bearer, path, f"Ordinary {path}")
            assert created.status_code == SUCCESS[path], (path, created.text[:300])
        assert await count(settings, select(func.count()).select_from(Project)) == len(PATHS)
        page = browser.get("/o/acme/projects/")
        assert page.text.count(FLASH) == 1
        assert "Project “Ordinary form” created." in page.text
        audited = await count(settings, select(func.count()).select_from(AuditEvent))

        for kind, statements in TRIPWIRES[backend(settings)].items():
            await run_sql(settings, statements)
            try:
                for path in PATHS:
                    answer = create_project(stack, browser, csrf, bearer, path, "Tripwire")
                    where = (kind, path, answer.status_code, answer.text[:300])
                    assert answer.status_code == EXPECTED_STATUS[kind], where
                    if path == "api":
                        assert answer.headers["content-type"] == PROBLEM_JSON, where
                        assert answer.json()["status"] == EXPECTED_STATUS[kind], where
                    else:
                        assert answer.headers["content-type"].startswith("text/html"), where
                    assert "refused at commit" not in answer.text
                    assert FLASH not in answer.text, where
                    assert "commit_tripwire" not in answer.text
            finally:
                await remove_tripwires(settings)
            named = select(func.count()).where(Project.name == "Tripwire")
            assert await count(settings, named) == 0, kind
            total = select(func.count()).select_from(AuditEvent)
            assert await count(settings, total) == audited, kind

        # Nor does any page say it was done (the form's flash message is dropped with its
        # redirect).
        assert FLASH not in browser.get("/o/acme/projects/").text

        # Nothing is left behind: the next write of the same name commits.
        again = create_project(stack, browser, csrf, bearer, "api", "Tripwire")
        assert again.status_code == 201, again.text[:300]
