"""A real headless Chromium for journey tests, driven by Playwright's sync API.

Playwright's own browser download is not used: the tests launch the distribution's Chromium
(`/usr/bin/chromium`). `PageWatch` records what a person would notice as broken — console
errors, failed requests and server errors from the app's own origin — so a journey can fail on
them even when its own assertions pass.
"""

from __future__ import annotations

import base64
import math
import os
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    Route,
)
from playwright.sync_api import Error as PlaywrightError

# Re-exported: the browser tests have always found them here.
from tests.support.threads import off_loop as off_loop
from tests.support.threads import run_async as run_async

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
GENERIC_ERROR = "Something went wrong"


def require_chromium() -> Path:
    """The Chromium binary, or a skip (a failure in CI, where browser tests must run)."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + "; CI must not skip them", pytrace=False)
    pytest.skip(reason)


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(require_chromium()), headless=True, args=CHROMIUM_ARGS
    )


@dataclass
class PageWatch:
    """Collects console errors, failed requests and unexpected error statuses of one origin.

    `expect_status(path, status)` declares an error status the journey provokes on purpose
    (the browser then also logs it to the console, which is not a finding either).
    """

    origin: str
    problems: list[str] = field(default_factory=list)
    expected: dict[str, set[int]] = field(default_factory=dict)
    # Console "failed to load" messages for these exact URLs are not findings.
    tolerated_urls: set[str] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

    def expect_status(self, path: str, status: int) -> None:
        self.expected.setdefault(path, set()).add(status)

    def _expected(self, url: str, status: int) -> bool:
        return self._own(url) and status in self.expected.get(self._path(url), set())

    def _own(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def _path(self, url: str) -> str:
        return url[len(self.origin) :].split("?", 1)[0].split("#", 1)[0] or "/"

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        # htmx logs a request it aborted itself (replaced by a newer one, see above) as errors.
        if text.startswith(("htmx:sendAbort", "htmx:afterRequest")):
            return
        status = re.search(r"status of (\d{3})", text)
        location = message.location.get("url", "")
        if location in self.tolerated_urls or (status and self._expected(location, int(status[1]))):
            return
        self.problems.append(
            f"console error on {message.page.url if message.page else '?'}: {text} ({location})"
        )

    def _on_request_failed(self, request: Request) -> None:
        if not self._own(request.url):
            return
        failure = request.failure or "unknown failure"
        # A navigation that is superseded (a redirect followed by a click) is aborted, not broken.
        if failure == "net::ERR_ABORTED" and request.is_navigation_request():
            return
        # Nor a static file of a page the test has already left (its stylesheet, its scripts,
        # the browser's icon fetch): the browser cancels them. A missing or broken file still
        # shows as its error status.
        if failure == "net::ERR_ABORTED" and self._path(request.url).startswith("/static/"):
            return
        # Nor an htmx request that a newer one replaced (hx-sync "replace": a search typed on
        # while the previous one was in flight). A real failure still shows as its status.
        if failure == "net::ERR_ABORTED" and request.headers.get("hx-request") == "true":
            return
        self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def _on_response(self, response: Response) -> None:
        if not self._own(response.url) or response.status < 400:
            return
        if self._expected(response.url, response.status):
            return
        self.problems.append(f"{response.status} from {response.request.method} {response.url}")

    def check(self) -> None:
        assert not self.problems, "the browser saw problems:\n" + "\n".join(self.problems)


# People's pictures: the dev IdP hands out Gravatar URLs (as Auth0 does). Tests fetch nothing
# from the internet, so a local picture answers for Gravatar.
PICTURE_HOSTS = re.compile(r"^https://([a-z0-9-]+\.)?gravatar\.com/")
_PICTURE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8">'
    b'<rect width="8" height="8" fill="#c9d3f2"/><circle cx="4" cy="3" r="1.6" fill="#3656d6"/>'
    b'<rect x="1.5" y="5.4" width="5" height="2.6" rx="1.3" fill="#3656d6"/></svg>'
)


def _picture(route: Route) -> None:
    route.fulfill(status=200, content_type="image/svg+xml", body=_PICTURE)


def serve_pictures_locally(context: BrowserContext) -> None:
    context.route(PICTURE_HOSTS, _picture)


def assert_no_generic_error(page: Page) -> None:
    body = page.locator("body").inner_text()
    assert GENERIC_ERROR not in body, f"{page.url} shows {GENERIC_ERROR!r}:\n{body}"


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    save_full_page(page, path)
    return path


_SESSIONS: weakref.WeakKeyDictionary[Page, CDPSession] = weakref.WeakKeyDictionary()


def save_full_page(page: Page, path: Path) -> None:
    """A full-page PNG of `page` at `path`, captured as `page.screenshot(full_page=True)` does
    in Chromium (the document's size, beyond the viewport) but encoded for speed: the same
    pixels in a larger file, in about a third less time (a tall page's PNG encoding was the
    slowest step of many state checks). One DevTools session per page, made again if a
    navigation ended it. The page is loaded first (its deferred scripts run): a picture of a
    page still loading is not the state, and a test pressing on at once would abort them."""
    page.wait_for_load_state()
    for attempt in range(2):
        session = _SESSIONS.get(page)
        if session is None:
            session = _SESSIONS[page] = page.context.new_cdp_session(page)
        try:
            size = session.send("Page.getLayoutMetrics")["cssContentSize"]
            clip = {
                "x": 0,
                "y": 0,
                "width": math.ceil(size["width"]),
                "height": math.ceil(size["height"]),
                "scale": 1,
            }
            shot = session.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "optimizeForSpeed": True,
                    "clip": clip,
                },
            )
        except PlaywrightError:
            _SESSIONS.pop(page, None)
            if attempt:
                raise
            continue
        path.write_bytes(base64.b64decode(shot["data"]))
        return
