"""The whole system on real sockets: the app and the dev IdP, each under uvicorn.

Both share one Settings object, exactly as `make run` does: the app's callback URL is
registered at the dev IdP, the dev IdP's issuer is the app's Auth0 issuer.

`started_stack` starts the pair and remembers the state they started in; `StackServers.reset()`
returns them to it (both databases, the app's stores, the outbox worker, the dev IdP's fault
injection and keys) so that one pair of servers serves many tests. `StackPool` keeps such a
pair running per backend, on a database of its own, and hands it to every test that asks for
the same settings: that is the `stack` fixture in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx
from advanced_alchemy.base import metadata_registry
from litestar import Litestar
from litestar.stores.file import FileStore
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from saas.app import create_app
from saas.auth0.outbox import OutboxWorker
from saas.auth0.runtime import WORKER_STATE_KEY
from saas.config import Settings, load_settings
from saas.db.config import create_sqlalchemy_config, standalone_session
from saas.db.models import Organization, OutboxJob, OutboxStatus
from saas.demo.data import DEMO_PASSWORD
from saas.demo.seed import seed_demo_data
from saas.devidp.app import create_devidp_app
from saas.devidp.context import DevIdp
from saas.devidp.faults import FaultBook
from saas.devidp.models import DevIdpBase
from saas.devidp.rate_window import RateLimitWindow
from saas.devidp.tenant import TenantConfig
from saas.login.sessions import RATE_LIMIT_STORE, SESSION_STORE
from tests.support.servers import Served, free_port, serving
from tests.support.snapshots import Snapshot
from tests.support.threads import off_loop, run_async

T = TypeVar("T")
_INPUT = re.compile(r"<input\b[^>]*>", re.S)
_ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')
_FORM = re.compile(r'<form\b[^>]*action="(?P<action>[^"]*)"', re.S)
# A connection on the IdP's chooser: its link and the name shown before its strategy.
_CHOICE = re.compile(r'<a [^>]*href="(/u/login/[^"]+)"[^>]*>([^<]+)<span', re.S)
# The app's stores (server-side sessions, sign-in counters): emptied between tests.
APP_STORES = (SESSION_STORE, RATE_LIMIT_STORE)


@dataclass(frozen=True)
class Stack:
    settings: Settings
    app_url: str
    idp_url: str

    def browser(self) -> Browser:
        return Browser(self)

    def management(self) -> httpx.Client:
        """A Management API client with the M2M client's token, as the outbox has."""
        settings = self.settings
        token = httpx.post(
            self.idp_url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": settings.auth0_management_client_id,
                "client_secret": settings.auth0_management_client_secret.get_secret_value(),
                "audience": settings.auth0_management_audience,
            },
        ).json()["access_token"]
        return httpx.Client(
            base_url=self.idp_url + "/api/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )


def stack_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    app_port, idp_port = free_port(), free_port()
    values: dict[str, object] = {
        "app_env": "test",
        "database_url": database_url,
        "app_base_url": f"http://127.0.0.1:{app_port}",
        "devidp_base_url": f"http://127.0.0.1:{idp_port}",
        "devidp_database_url": f"sqlite+aiosqlite:///{tmp_path / 'devidp.db'}",
        "devidp_key_path": tmp_path / "devidp-keys.json",
        "state_dir": tmp_path / "state",
        "auth0_domain": None,
        "platform_operator_emails": "olivia@ops.example",
        "login_rate_limit_per_minute": 1000,
    }
    values.update(overrides)
    return load_settings(**values)


async def add_fault(stack: Stack, **fault: Any) -> None:
    """Arm a dev IdP fault (saas/devidp/faults.py), as a test's setup."""
    async with httpx.AsyncClient() as client:
        response = await client.post(stack.idp_url + "/__dev/faults", json=fault)
        assert response.status_code == 201, response.text


class OrganizationSession:
    """Work against one organization (acme unless named), each piece in a session of its own,
    committed.

    One event loop and one engine serve every piece until the block ends: the isolation
    matrix writes a fresh target before most of its cells, and a new engine and loop each time
    cost more than the write. Its loop runs in the calling thread, which must have none
    running (`in_org` is the one-off that is safe either way)."""

    def __init__(self, settings: Settings, slug: str = "acme") -> None:
        self._config = create_sqlalchemy_config(settings)
        self._slug = slug
        self._runner = asyncio.Runner()

    def __enter__(self) -> OrganizationSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._runner.run(self._config.get_engine().dispose())
        finally:
            self._runner.close()

    def __call__(self, work: Callable[[AsyncSession, Organization], Awaitable[T]]) -> T:
        return self._runner.run(self._run(work))

    async def _run(self, work: Callable[[AsyncSession, Organization], Awaitable[T]]) -> T:
        async with self._config.get_session() as session:
            org = (
                await session.execute(select(Organization).where(Organization.slug == self._slug))
            ).scalar_one()
            result = await work(session, org)
            await session.commit()
            return result


def in_org(
    settings: Settings, slug: str, work: Callable[[AsyncSession, Organization], Awaitable[T]]
) -> T:
    """Run `work` against the organization `slug`, in a session of its own, committed; safe to
    call whether or not this thread has a running loop."""

    def once() -> T:
        with OrganizationSession(settings, slug) as organization:
            return organization(work)

    return off_loop(once)


def in_acme(settings: Settings, work: Callable[[AsyncSession, Organization], Awaitable[T]]) -> T:
    """`in_org` for the demo organization acme."""
    return in_org(settings, "acme", work)


async def seed(settings: Settings) -> None:
    async with standalone_session(settings) as session:
        await seed_demo_data(session)
        await session.commit()


# How long the seed's own outbox jobs may take to reach the dev IdP when a stack starts.
SEED_SYNC_SECONDS = 60.0


async def _seed_synced_snapshot(settings: Settings, worker_running: bool) -> Snapshot:
    """The app's rows once the outbox has sent the seed's jobs to the dev IdP, as `make run`
    has them a moment after it starts. Restoring the rows from before those jobs ran would
    have the worker push every demo organization and member again before each test."""
    engine = create_sqlalchemy_config(settings).get_engine()
    pending = select(func.count()).where(OutboxJob.status == OutboxStatus.PENDING.value)
    deadline = time.monotonic() + SEED_SYNC_SECONDS
    try:
        while worker_running:
            async with engine.connect() as connection:
                left = (await connection.execute(pending)).scalar_one()
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{left} of the seed's outbox jobs not done in time")
            await asyncio.sleep(0.05)
        failed = select(func.count()).where(OutboxJob.status == OutboxStatus.FAILED.value)
        async with engine.connect() as connection:
            if given_up := (await connection.execute(failed)).scalar_one():
                # Kept in the snapshot, it would come back failed before every test.
                raise RuntimeError(f"{given_up} of the seed's outbox jobs failed")
        return await Snapshot.take(engine, metadata_registry.get(None))
    finally:
        await engine.dispose()


def _devidp_engine(settings: Settings) -> AsyncEngine:
    # Waits for the dev IdP's own connections (SQLite, one writer at a time) instead of failing.
    return create_async_engine(settings.devidp_database_url, connect_args={"timeout": 15})


async def _devidp_snapshot(settings: Settings) -> Snapshot:
    engine = _devidp_engine(settings)
    try:
        return await Snapshot.take(engine, DevIdpBase.metadata)
    finally:
        await engine.dispose()


@dataclass
class StackServers:
    """The running pair, and the state they started in."""

    stack: Stack
    app: Litestar
    app_served: Served
    idp: DevIdp
    app_rows: Snapshot
    idp_rows: Snapshot
    idp_keys: bytes
    # Store directories that existed once the app had started (file stores only).
    store_dirs: dict[str, bool]
    _engines: list[AsyncEngine] = field(default_factory=list)

    def reset(self) -> None:
        """Back to the state the servers started in, as if they had just been started."""
        # Fault injection is in memory: a new book, as a new dev IdP has (ids from 1 again).
        self.idp.faults = FaultBook()
        # So is the simulated tenant's configuration (the Action, profile claims) and the
        # Management API's rate-limit window: as a new dev IdP has them.
        self.idp.tenant = TenantConfig()
        self.idp.rate_limit = RateLimitWindow()
        key_path = self.stack.settings.devidp_key_path
        if key_path.read_bytes() != self.idp_keys:
            key_path.write_bytes(self.idp_keys)  # the key store re-reads a changed file
        self.app_served.call(self._reset_on_app_loop())

    def park(self) -> None:
        """Stop the outbox worker while other servers run tests: an idle stack polls nothing
        and finishes nothing a test left behind (`reset` starts the worker again)."""
        self.app_served.call(self._stop_worker())

    async def _stop_worker(self) -> OutboxWorker | None:
        # Stopping waits for the job it is running.
        worker: OutboxWorker | None = self.app.state.get(WORKER_STATE_KEY)
        if worker is not None:
            await worker.stop()
        return worker

    async def _reset_on_app_loop(self) -> None:
        # The worker first: a job in flight would write into the restored rows, or call the
        # dev IdP while its rows are replaced.
        worker = await self._stop_worker()
        if not self._engines:
            self._engines = [
                create_sqlalchemy_config(self.stack.settings).get_engine(),
                _devidp_engine(self.stack.settings),
            ]
        app_engine, idp_engine = self._engines
        await self.app_rows.restore(app_engine)
        await self.idp_rows.restore(idp_engine)
        await empty_app_stores(self.app, self.store_dirs)
        if worker is not None:
            worker.start()

    def close(self) -> None:
        async def dispose() -> None:
            for engine in self._engines:
                await engine.dispose()

        self.app_served.call(dispose())


@contextmanager
def started_stack(settings: Settings) -> Iterator[StackServers]:
    """Seed the app's database, start the dev IdP and the app, and note the state they
    started in. Safe to enter on a thread whose event loop is running (Playwright's)."""
    run_async(seed(settings))
    with ExitStack() as stack:
        devidp_app = create_devidp_app(settings)
        idp_served = stack.enter_context(
            serving(devidp_app, port=int(settings.devidp_base_url.rsplit(":", 1)[1]))
        )
        idp_keys = settings.devidp_key_path.read_bytes()
        app = create_app(settings)
        app_served = stack.enter_context(
            serving(app, port=int(settings.app_base_url.rsplit(":", 1)[1]))
        )
        # The API's OpenAPI document once, as a deployed app soon serves it: building it
        # changes handler state inside Litestar that no reset can undo (2.25 adds the path
        # parameters no handler takes to the handlers' signatures, and from then on every 422
        # of those routes also names `org`). Every test then sees the state a running server
        # is in, whichever test happened to ask for the document first.
        schema = httpx.get(app_served.url + "/api/docs/openapi.json", timeout=30)
        schema.raise_for_status()
        # Both databases as they are once the seed's jobs are done, taken together.
        worker_running = app.state.get(WORKER_STATE_KEY) is not None
        app_rows = run_async(_seed_synced_snapshot(settings, worker_running))
        idp_rows = run_async(_devidp_snapshot(settings))
        store_dirs = app_store_dirs(app)
        servers = StackServers(
            stack=Stack(settings=settings, app_url=app_served.url, idp_url=idp_served.url),
            app=app,
            app_served=app_served,
            idp=devidp_app.state["devidp"],
            app_rows=app_rows,
            idp_rows=idp_rows,
            idp_keys=idp_keys,
            store_dirs=store_dirs,
        )
        stack.callback(servers.close)
        yield servers


def app_store_dirs(app: Litestar) -> dict[str, bool]:
    """Which of the app's file stores have their directory now (right after it started)."""
    dirs = {}
    for name in APP_STORES:
        store = app.stores.get(name)
        dirs[name] = isinstance(store, FileStore) and Path(store.path).is_dir()
    return dirs


async def empty_app_stores(app: Litestar, store_dirs: Mapping[str, bool]) -> None:
    """The app's sessions and sign-in counts gone, as in an app just started (on its loop)."""
    for name in APP_STORES:
        store = app.stores.get(name)
        if not isinstance(store, FileStore):
            await store.delete_all()  # Redis: this store's namespace only
            continue
        # As a fresh app has it: the directory only if it existed once the app had started.
        await asyncio.to_thread(shutil.rmtree, store.path, ignore_errors=True)
        if store_dirs[name]:
            await store.path.mkdir(parents=True, exist_ok=True)


@contextmanager
def running_stack(settings: Settings) -> Iterator[Stack]:
    """A pair of servers of the caller's own, for a test that needs settings or a database
    nobody else may share (a store that fails, a Redis that is stopped)."""
    with started_stack(settings) as servers:
        yield servers.stack


# ---- running stacks, shared ---------------------------------------------------------------

NewDatabase = Callable[[Path], AbstractContextManager[str]]
# Stacks kept running per backend. Modules ask for a handful of different settings, and under
# pytest-xdist a worker's modules come in no particular order: with only the last stack kept,
# a worker started one for almost every module.
STACKS_PER_BACKEND = 4


@dataclass
class _Running:
    servers: StackServers
    exit: ExitStack
    used: bool = False  # a test has had it since it was started or reset
    parked: bool = False


class StackPool:
    """Running stacks, each handed (reset) to every test that asks for its backend and
    settings; the least recently used one is stopped when a backend would have more than
    STACKS_PER_BACKEND. Only the stack in use runs its outbox worker: the others are parked.

    Each stack has a database of its own (`new_database(directory)` makes one, dropped when
    the stack stops): nothing else in the run writes to it, and its outbox worker takes no job
    another test enqueued in the shared test database."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._running: dict[tuple[str, str], _Running] = {}  # oldest use first
        self.started = 0  # how many stacks this pool has started (the reset test reads it)
        self._signing_keys: bytes | None = None  # the dev IdP's key file of the first stack

    def get(
        self, backend: str, overrides: Mapping[str, object], new_database: NewDatabase
    ) -> Stack:
        key = (backend, repr(sorted(overrides.items())))
        self._park_all_but(key)
        running = self._running.pop(key, None)
        if running is not None and running.used:
            try:
                off_loop(running.servers.reset)
            except Exception as error:  # a previous test broke the servers: start new ones
                warnings.warn(f"stack reset failed ({error!r}); restarting it", stacklevel=2)
                off_loop(running.exit.close)
                running = None
        if running is None:
            self._make_room(backend)
            running = self._start(overrides, new_database)
        running.used, running.parked = True, False
        self._running[key] = running  # now the most recently used
        return running.servers.stack

    def _park_all_but(self, key: tuple[str, str]) -> None:
        for other, running in self._running.items():
            if other != key and not running.parked:
                off_loop(running.servers.park)
                running.parked = True

    def _make_room(self, backend: str) -> None:
        same_backend = [key for key in self._running if key[0] == backend]
        for key in same_backend[: max(0, len(same_backend) - STACKS_PER_BACKEND + 1)]:
            off_loop(self._running.pop(key).exit.close)

    def _start(self, overrides: Mapping[str, object], new_database: NewDatabase) -> _Running:
        self.started += 1
        directory = self._root / f"stack-{self.started}"
        directory.mkdir()
        exit_stack = ExitStack()
        try:
            database_url = off_loop(exit_stack.enter_context, new_database(directory))
            settings = stack_settings(database_url, directory, **overrides)
            if self._signing_keys is not None and not settings.devidp_key_path.exists():
                # The first stack's key, not a new 2048-bit RSA key per stack: generating one
                # is a sizeable share of a start, and no test compares two stacks' keys (each
                # has its own issuer, so neither takes the other's tokens).
                with os.fdopen(
                    os.open(settings.devidp_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                    "wb",
                ) as key_file:
                    key_file.write(self._signing_keys)
            servers = off_loop(exit_stack.enter_context, started_stack(settings))
            if self._signing_keys is None:
                self._signing_keys = servers.idp_keys
        except BaseException:
            off_loop(exit_stack.close)
            raise
        return _Running(servers=servers, exit=exit_stack)

    def close(self) -> None:
        """Stop every running stack and drop their databases."""
        while self._running:
            _, running = self._running.popitem()
            off_loop(running.exit.close)


def form_submission(
    page: str, page_url: str, fields: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """Where the page's first form posts to (absolute), and its hidden fields with `fields`."""
    match = _FORM.search(page)
    assert match, f"no form on {page_url}"
    return urljoin(page_url, html.unescape(match["action"])), {**form_fields(page), **fields}


def chooser_link(page: str, label: str | None = None) -> str | None:
    """On the IdP's "Choose how you sign in" page, the link to the connection named `label`
    (the first one without a label). Elsewhere None, or a failure when `label` was asked for:
    a connection to choose means the chooser must be there."""
    if "Choose how you sign in" not in page:
        assert label is None, f"asked to choose {label!r}, but the IdP offered no choice:\n{page}"
        return None
    for href, text in _CHOICE.findall(page):
        if label is None or html.unescape(text).strip() == label:
            return html.unescape(href)
    raise AssertionError(f"the IdP offers no connection {label!r}:\n{page}")


def form_fields(page: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for tag in _INPUT.findall(page):
        attrs = dict(_ATTR.findall(tag))
        if attrs.get("type") == "hidden" and "name" in attrs:
            fields[attrs["name"]] = html.unescape(attrs.get("value", ""))
    return fields


class Browser:
    """An HTTP client that behaves like a browser: one cookie jar for both origins (cookies
    ignore ports), redirects followed one hop at a time so tests can inspect them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(follow_redirects=False, timeout=15)
        self.history: list[httpx.Response] = []

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self._absolute(url), **kwargs)

    def _absolute(self, url: str) -> str:
        return url if url.startswith("http") else self.stack.app_url + url

    def follow(self, response: httpx.Response, *, max_hops: int = 15) -> httpx.Response:
        for _ in range(max_hops):
            self.history.append(response)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(str(response.url), response.headers["location"])
            response = self.client.get(location)
        raise AssertionError("too many redirects")

    def submit(self, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
        action, data = form_submission(page.text, str(page.url), fields)
        return self.client.post(action, data=data)

    def start_login(self, email: str, next_url: str | None = None) -> httpx.Response:
        page = self.get("/login" + (f"?next={next_url}" if next_url else ""))
        assert page.status_code == 200, page.text
        return self.submit(page, {"email": email})

    def sign_in_at_idp(
        self, response: httpx.Response, email: str, password: str = DEMO_PASSWORD
    ) -> httpx.Response:
        """From a redirect to the IdP, through its sign-in form, back to wherever it sends us."""
        page = self.follow(response)
        if link := chooser_link(page.text):
            page = self.follow(self.client.get(urljoin(str(page.url), link)))
        return self.follow(self.submit(page, {"email": email, "password": password}))

    def login(self, email: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        return self.sign_in_at_idp(self.start_login(email), email, password)
