"""The projects pages over real HTTP: a refused write is shown in the new-project form (as an
htmx fragment that replaces just the form, or as a page for a plain post), refusals that are
not about the input get the error pages, and a plain post's redirect lands on a page that says
once what was done."""

from __future__ import annotations

import re

import httpx

from saas.tenancy.permissions import Role
from tests.integration.test_stale_authority import set_role
from tests.support.stack import Browser, Stack

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
FLASH = 'data-testid="flash"'
LIST = "/o/acme/projects"


def signed_in(stack: Stack, email: str) -> tuple[Browser, str]:
    browser = stack.browser()
    page = browser.login(email)
    token = CSRF.search(page.text)
    assert token, page.text
    return browser, token[1]


def post(
    browser: Browser, token: str, path: str, form: dict[str, str], *, htmx: bool = False
) -> httpx.Response:
    headers = {"X-CSRFToken": token, "accept": "text/html"}
    if htmx:
        headers["HX-Request"] = "true"
    return browser.client.post(browser.stack.app_url + path, data=form, headers=headers)


def project_id(page: str, name: str) -> str:
    found = re.search(
        rf"<td>{re.escape(name)}</td>.*?/projects/([0-9a-f-]{{36}})/delete", page, re.S
    )
    assert found, page
    return found[1]


def assert_form_fragment(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["HX-Retarget"] == "#project-create"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert response.text.lstrip().startswith("<form")
    assert 'id="project-create"' in response.text
    assert 'id="projects-panel"' not in response.text
    assert "<html" not in response.text
    assert message in response.text
    assert 'aria-invalid="true"' in response.text


def test_refusals_are_shown_in_the_form_and_plain_posts_say_what_was_done(stack: Stack) -> None:
    alice, token = signed_in(stack, "alice@acme.example")

    # A plain post: redirected to the list, which says once what was done.
    created = post(alice, token, LIST + "/", {"name": "Roadmap"})
    assert created.status_code == 303, created.text
    assert created.headers["location"] == LIST
    page = alice.get(created.headers["location"])
    assert page.text.count(FLASH) == 1
    assert "Project “Roadmap” created." in page.text
    again = alice.get(LIST)
    assert FLASH not in again.text
    assert "<td>Roadmap</td>" in again.text

    # htmx: the new-project form alone, with the error beside its field and what was typed.
    assert_form_fragment(
        post(alice, token, LIST + "/", {"name": "   "}, htmx=True), 422, "Give the project a name."
    )
    taken = post(alice, token, LIST + "/", {"name": "roadmap"}, htmx=True)
    assert_form_fragment(taken, 409, "A project named &#39;roadmap&#39; exists already.")
    assert 'value="roadmap"' in taken.text
    too_long = post(alice, token, LIST + "/", {"name": "x" * 500}, htmx=True)
    assert_form_fragment(too_long, 422, "Use at most 120 characters.")
    assert f'value="{"x" * 200}"' in too_long.text  # what was typed, cut short

    # A plain post that is refused: the form with its error and what was typed, on a page.
    plain = post(alice, token, LIST + "/", {"name": "roadmap"})
    assert plain.status_code == 409, plain.text
    assert plain.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in plain.text.lower()
    assert 'id="project-create"' in plain.text
    assert 'value="roadmap"' in plain.text
    assert "exists already" in plain.text
    assert 'aria-current="page"' in plain.text  # the tabs lead back to the list
    assert "error-card" not in plain.text

    # A rename to a taken name: the error in the same place, the new name not put in the
    # new-project field.
    backlog = post(alice, token, LIST + "/", {"name": "Backlog"})
    assert backlog.status_code == 303
    listing = alice.get(LIST).text
    backlog_id, roadmap_id = project_id(listing, "Backlog"), project_id(listing, "Roadmap")
    renamed = post(alice, token, f"{LIST}/{backlog_id}/rename", {"name": "ROADMAP"}, htmx=True)
    assert_form_fragment(renamed, 409, "exists already")
    assert 'value="ROADMAP"' not in renamed.text

    # Not about the input: the error pages, as from any route.
    missing = "0190a0e0-0000-7000-8000-000000000000"
    gone = post(alice, token, f"{LIST}/{missing}/rename", {"name": "Plan"}, htmx=True)
    assert gone.status_code == 404, gone.text
    assert "error-card" in gone.text
    assert "HX-Retarget" not in gone.headers
    # A viewer's write is refused by the route's guard (403), before any input is looked at.
    bob, bob_token = signed_in(stack, "bob@acme.example")
    set_role(stack, "bob@acme.example", Role.VIEWER)
    for htmx in (True, False):
        refused = post(bob, bob_token, LIST + "/", {"name": "   "}, htmx=htmx)
        assert refused.status_code == 403, refused.text
        assert "error-card" in refused.text
        assert "HX-Retarget" not in refused.headers
        assert "Give the project a name." not in refused.text

    # Plain rename and delete say what they did, once.
    done = post(alice, token, f"{LIST}/{roadmap_id}/rename", {"name": "Plan"})
    assert done.status_code == 303, done.text
    page = alice.get(done.headers["location"])
    assert page.text.count(FLASH) == 1
    assert "Project renamed to “Plan”." in page.text
    deleted = post(alice, token, f"{LIST}/{roadmap_id}/delete", {})
    assert deleted.status_code == 303, deleted.text
    page = alice.get(deleted.headers["location"])
    assert page.text.count(FLASH) == 1
    assert "Project “Plan” deleted." in page.text
    assert FLASH not in alice.get(LIST).text

    # htmx writes answer with the panel and leave no message for a later page.
    swapped = post(alice, token, LIST + "/", {"name": "Quiet"}, htmx=True)
    assert swapped.status_code == 200, swapped.text
    assert 'id="projects-panel"' in swapped.text
    assert FLASH not in alice.get(LIST).text
