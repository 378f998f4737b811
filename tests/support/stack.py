"""The whole system on real sockets: the app and the dev IdP, each under uvicorn.

Both share one Settings object, exactly as `make run` does: the app's callback URL is
registered at the dev IdP, the dev IdP's issuer is the app's Auth0 issuer.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from saas.app import create_app
from saas.config import Settings, load_settings
from saas.db.config import standalone_session
from saas.demo.data import DEMO_PASSWORD
from saas.demo.seed import seed_demo_data
from saas.devidp.app import create_devidp_app
from tests.support.servers import free_port, serve

_INPUT = re.compile(r"<input\b[^>]*>", re.S)
_ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')
_FORM = re.compile(r'<form\b[^>]*action="(?P<action>[^"]*)"', re.S)


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


async def seed(settings: Settings) -> None:
    async with standalone_session(settings) as session:
        await seed_demo_data(session)
        await session.commit()


@contextmanager
def running_stack(settings: Settings) -> Iterator[Stack]:
    asyncio.run(seed(settings))
    with ExitStack() as stack:
        idp_url = stack.enter_context(
            serve(create_devidp_app(settings), port=int(settings.devidp_base_url.rsplit(":", 1)[1]))
        )
        app_url = stack.enter_context(
            serve(create_app(settings), port=int(settings.app_base_url.rsplit(":", 1)[1]))
        )
        yield Stack(settings=settings, app_url=app_url, idp_url=idp_url)


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

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.client.get(self._absolute(url), **kwargs)  # type: ignore[arg-type]

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
        match = _FORM.search(page.text)
        assert match, f"no form on {page.url}"
        action = urljoin(str(page.url), html.unescape(match["action"]))
        return self.client.post(action, data={**form_fields(page.text), **fields})

    def start_login(self, email: str, next_url: str | None = None) -> httpx.Response:
        page = self.get("/login" + (f"?next={next_url}" if next_url else ""))
        assert page.status_code == 200, page.text
        return self.submit(page, {"email": email})

    def sign_in_at_idp(
        self, response: httpx.Response, email: str, password: str = DEMO_PASSWORD
    ) -> httpx.Response:
        """From a redirect to the IdP, through its sign-in form, back to wherever it sends us."""
        page = self.follow(response)
        if "Choose how you sign in" in page.text:
            link = re.search(r'href="(/u/login/[^"]+)"', page.text)
            assert link, page.text
            page = self.follow(self.client.get(urljoin(str(page.url), html.unescape(link[1]))))
        return self.follow(self.submit(page, {"email": email, "password": password}))

    def login(self, email: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        return self.sign_in_at_idp(self.start_login(email), email, password)
