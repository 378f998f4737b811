"""Browser fixtures: one Chromium for each run of browser modules, a fresh context per test,
and the `stack` of tests/conftest.py (reset to its seeded state for each test). A test that
needs other settings says so with `pytest.mark.stack(...)` or by overriding (or
parametrizing) `stack_overrides`.

The journeys run on SQLite only: the SQL behaviour is covered on both backends by the
integration tests, the browser adds the parts only a browser sees.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin

import pytest
from playwright.sync_api import APIResponse, Browser, Page, Playwright, expect, sync_playwright

from saas.demo.data import DEMO_PASSWORD
from tests.support.browser import (
    PageWatch,
    assert_no_generic_error,
    launch_chromium,
    screenshot,
    serve_pictures_locally,
)
from tests.support.stack import Stack, chooser_link, form_submission

TIMEOUT_MS = 10_000
# `expect(...)` waits as long as an action does (Playwright's own default is 5 s): with four
# workers on two cores, a POST that runs the outbox beside a browser can take longer than 5 s.
expect.set_options(timeout=TIMEOUT_MS)
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


class SharedChromium:
    """One Chromium for each run of browser modules that a worker is given one after another.

    Starting Playwright's driver and Chromium costs about a second of CPU, once per module
    before. Playwright's sync API marks its asyncio loop as running in the main thread for as
    long as it is started, which other tests (asyncio.run, async tests) and the session's
    fixtures cannot live with: so it stops with the last browser module of each run, before
    anything else is torn down or set up.
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        # Set before each teardown: whether the next test to run is a browser test too.
        self.next_test_is_a_browser_test = False

    def browser(self) -> Browser:
        if self._browser is None or not self._browser.is_connected():
            self.stop()
            self._playwright = sync_playwright().start()
            self._browser = launch_chromium(self._playwright)
        return self._browser

    def stop(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


SHARED_CHROMIUM = SharedChromium()
E2E_DIR = Path(__file__).parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    keep = nextitem is not None and E2E_DIR in nextitem.path.parents
    SHARED_CHROMIUM.next_test_is_a_browser_test = keep
    uses_the_browser = isinstance(item, pytest.Function) and "chromium" in item.fixturenames
    if not keep and not uses_the_browser:
        # Nothing this test tears down needs the browser (a module may leave it running
        # without asking for it): stop it before the session's fixtures go.
        SHARED_CHROMIUM.stop()
    return (yield)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield SHARED_CHROMIUM.browser()
    # Torn down after the module's own fixtures (their contexts are closed by then), before
    # any fixture of a wider scope.
    if not SHARED_CHROMIUM.next_test_is_a_browser_test:
        SHARED_CHROMIUM.stop()


@pytest.fixture(scope="session")
def backend() -> str:
    """The journeys run on SQLite only (see the module docstring)."""
    return "sqlite"


@dataclass
class Journey:
    """One person's browser tab against one running stack, with what it noticed."""

    stack: Stack
    page: Page
    watch: PageWatch
    name: str

    def goto(self, url: str) -> None:
        absolute = url if url.startswith("http") else self.stack.app_url + url
        self.page.goto(absolute)
        self.check_page()

    def check_page(self) -> None:
        assert_no_generic_error(self.page)

    def expect_url(self, url: str) -> None:
        absolute = url if url.startswith("http") else self.stack.app_url + url
        expect(self.page).to_have_url(absolute)
        self.check_page()

    def wait_for(self, url_prefix: str) -> None:
        """Wait until the tab shows a URL starting with `url_prefix` (absolute, or app-relative)
        and has loaded it, then check the page."""
        prefix = url_prefix if url_prefix.startswith("http") else self.stack.app_url + url_prefix
        self.page.wait_for_url(lambda url: url.startswith(prefix))
        self.page.wait_for_load_state()
        self.check_page()

    def screenshot(self) -> Path:
        return screenshot(self.page, self.name)

    def start_login(self, email: str) -> None:
        """Type the email on the app's sign-in page and continue to the IdP."""
        self.goto("/login")
        self.page.get_by_label("Work email").fill(email)
        self.page.get_by_role("button", name="Continue").click()
        self.wait_for(self.stack.idp_url + "/")

    def choose_connection(self, label: str) -> None:
        """On the IdP's chooser ("Choose how you sign in"), pick a connection."""
        expect(self.page.get_by_text("Choose how you sign in")).to_be_visible()
        self.page.get_by_role("link", name=label).click()
        self.wait_for(self.stack.idp_url + "/u/login/")

    def sign_in_at_idp(self, email: str, password: str = DEMO_PASSWORD) -> None:
        """Fill the IdP's sign-in form (enterprise or password database) and submit it."""
        form = self.page.locator("form").filter(has=self.page.locator("input[name=password]"))
        form.locator("input[name=email]").fill(email)
        form.locator("input[name=password]").fill(password)
        form.locator("button[type=submit]").click()
        self.wait_for(self.stack.app_url + "/")

    def sign_in(
        self,
        email: str,
        *,
        connection: str | None = None,
        password: str = DEMO_PASSWORD,
        next_url: str | None = None,
    ) -> str:
        """Sign `email` in through the whole flow (the app's sign-in form, the IdP's chooser and
        sign-in form, the callback) in this tab's own cookie jar, then open the page the flow
        ended on, as a sign-in in the browser does; returns its app-relative path. `next_url`
        is the app's own `?next=`, the page to come back to.

        The flow's requests go over Playwright's request API, which shares the browser
        context's cookies: the same servers and cookies, without drawing pages that are not the
        test's subject (a browser sign-in was a quarter of a browser test's time). The sign-in
        pages themselves are driven in the browser by test_journeys and the layout walk."""
        request = self.page.context.request
        login = self.stack.app_url + "/login" + (f"?next={quote(next_url)}" if next_url else "")
        page = self._submit(request.get(login), {"email": email})
        if link := chooser_link(page.text(), connection):
            page = request.get(urljoin(page.url, link))
        page = self._submit(page, {"email": email, "password": password})
        ended = f"signing {email} in ended on {page.status} {page.url}:\n{page.text()}"
        assert page.ok, ended
        assert page.url.startswith(self.stack.app_url + "/"), ended
        path = page.url.removeprefix(self.stack.app_url)
        assert not path.startswith(("/login", "/callback", "/logged-out")), ended
        self.goto(page.url)
        return path

    def _submit(self, page: APIResponse, fields: dict[str, str]) -> APIResponse:
        assert page.ok, f"{page.status} from {page.url}:\n{page.text()}"
        action, data = form_submission(page.text(), page.url, fields)
        form: dict[str, str | float | bool] = {**data}
        return self.page.context.request.post(action, form=form)


@pytest.fixture
def journey(chromium: Browser, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Journey]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    serve_pictures_locally(context)
    page = context.new_page()
    # The dev IdP serves no favicon (saas/devidp is not the browser tests' to change), so
    # Chromium's automatic /favicon.ico request there logs a 404; the app has an icon.
    watch = PageWatch(origin=stack.app_url, tolerated_urls={stack.idp_url + "/favicon.ico"})
    watch.attach(page)
    try:
        yield Journey(stack=stack, page=page, watch=watch, name=request.node.name)
        if request.node.stash.get(CALL_FAILED, False):
            screenshot(page, request.node.name + "-failed")
        else:
            watch.check()
    finally:
        context.close()
