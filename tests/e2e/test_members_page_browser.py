"""The members page as a customer's admin uses it (issue 16), at 1280x800 and 390x844, in a real
headless Chromium (SQLite only): it never scrolls sideways; a person's picture or initials,
name and email share one cell and long emails wrap instead of being clipped; row actions sit in
a per-row menu; a role change is a deliberate press, a raise to admin or owner asks first; a
removal leaves a correct count and the focus somewhere useful; searching announces its count,
marks the list busy and does not add history entries; everything works from the keyboard.

Each distinct state (the list, a row menu open, the invite form open, with an error and sent, the
confirmation dialog, after a removal, search results) passes `check_layout` once per width: no
sideways scroll, no critical or serious axe-core violation, and a full-page screenshot
`test-artifacts/screenshots/members-<state>-<width>.png`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from playwright.sync_api import FloatRect, Locator, Page, Request, expect
from sqlalchemy import select

from saas.audit.services import Actor
from saas.db.config import standalone_session
from saas.db.models import Membership, Organization, User
from saas.members.services import MembershipService
from saas.tenancy.permissions import Role
from tests.e2e.conftest import Journey
from tests.support.browser import run_async, screenshot
from tests.support.keyboard import assert_focus_ring, tab_to
from tests.support.layout import check_layout
from tests.support.members_page import (
    choose_role,
    confirm_dialog,
    horizontal_overflow,
    member_row,
    open_invite_form,
    row_action,
)
from tests.support.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.long_module]

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
LONG_EMAIL = "maximilian.alexander.featherstonehaugh-worthington@research-division.acme.example"
LONG_INVITE = "a.very.long.invitation.address.that.must.wrap@subsidiary-holdings.acme.example"
ROW_OF_BOB = '[data-testid="member-row"][data-email="bob@acme.example"]'
# What sending an invitation changes: the form (its message), the pending list, the toasts.
INVITE_PARTS = ["#invite-disclosure", "#invitations-panel", "#toast-region"]


@pytest.fixture(params=sorted(SIZES))
def size(request: pytest.FixtureRequest) -> tuple[int, int]:
    return SIZES[str(request.param)]


def sign_in_as_alice(journey: Journey, size: tuple[int, int]) -> Page:
    page = journey.page
    page.set_viewport_size({"width": size[0], "height": size[1]})
    members = "/o/acme/members"
    assert journey.sign_in("alice@acme.example", next_url=members) == members
    return page


async def add_people(stack: Stack, count: int) -> None:
    """`count` viewers, the first with a long name and a very long email."""
    async with standalone_session(stack.settings) as session:
        acme = (
            await session.execute(select(Organization).where(Organization.slug == "acme"))
        ).scalar_one()
        members = MembershipService(session=session)
        for i in range(count):
            email, name = (
                (LONG_EMAIL, "Maximilian Alexander Featherstonehaugh-Worthington")
                if i == 0
                else (f"page{i:02d}@acme.example", f"Page {i:02d}")
            )
            user = User(sub=f"auth0|page-{i}", email=email, name=name)
            session.add(user)
            await session.flush()
            await members.add(
                organization_id=acme.id, user_id=user.id, role=Role.VIEWER, actor=Actor.system()
            )
        await session.commit()


async def role_in_db(stack: Stack, email: str) -> str | None:
    async with standalone_session(stack.settings) as session:
        return (
            await session.execute(
                select(Membership.role)
                .join(User, User.id == Membership.user_id)
                .join(Organization, Organization.id == Membership.organization_id)
                .where(User.email == email, Organization.slug == "acme")
            )
        ).scalar_one_or_none()


@pytest.fixture
def posts(journey: Journey) -> Iterator[list[str]]:
    """The paths of the POSTs the page sends, as they are sent."""
    sent: list[str] = []

    def record(request: Request) -> None:
        if request.method == "POST":
            sent.append(request.url.split("?", 1)[0].removeprefix(journey.stack.app_url))

    journey.page.on("request", record)
    yield sent
    journey.page.remove_listener("request", record)


_STICKING_OUT = """() => {
  const width = document.scrollingElement.clientWidth;
  return Array.from(document.body.querySelectorAll("*"))
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .filter((e) => !e.closest(".tabs"))  // the tabs scroll inside their own strip
    .slice(0, 8)
    .map((e) => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right));
}"""


# Every visible control of the page, measured in one evaluation (a round trip per control
# made this check the slowest part of the module).
_CONTROLS_OUTSIDE = """() => {
  const width = document.scrollingElement.clientWidth;
  return Array.from(document.querySelectorAll("#main button, #main summary, #main select"))
    .filter((e) => e.checkVisibility({ visibilityProperty: true }))
    .map((e) => ({ html: e.outerHTML.slice(0, 120), box: e.getBoundingClientRect() }))
    .filter(({ box }) => box.width > 0 && box.height > 0)
    .filter(({ box }) => box.x < 0 || box.right > width + 0.5)
    .map(({ html, box }) => `${html} at x=${box.x} width=${box.width}`);
}"""


def assert_fits(page: Page) -> None:
    overflow = horizontal_overflow(page)
    assert overflow == 0, (f"scrolls sideways by {overflow}px", page.evaluate(_STICKING_OUT))
    # Every visible control stays inside the screen (no "Remove" cut to "Rem").
    assert page.evaluate(_CONTROLS_OUTSIDE) == []


def check_state(page: Page, state: str, *, changed: Sequence[str] = ()) -> None:
    """A distinct state of the page: every control inside the screen, and `check_layout` (no
    sideways scroll, no serious axe-core violation, a screenshot `members-<state>-<width>`).
    `changed`: the parts that differ from the members page already audited (earlier in the
    test, or the layout walk's), the only ones axe needs to see again."""
    assert page.evaluate(_CONTROLS_OUTSIDE) == []
    check_layout(page, f"members-{state}", changed=changed)


def not_clipped(locator: Locator) -> bool:
    return bool(locator.evaluate("e => e.scrollWidth <= e.clientWidth + 1"))


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


# ---- layout ------------------------------------------------------------------------------


def test_the_list_fits_with_people_together_and_actions_in_a_menu(
    journey: Journey, size: tuple[int, int]
) -> None:
    run_async(add_people(journey.stack, 30))
    page = sign_in_as_alice(journey, size)
    width = size[0]

    # The list comes first; the invite form is behind "Invite people".
    expect(page.get_by_label("Email addresses")).to_be_hidden()
    rows = page.get_by_test_id("member-row")
    expect(rows).to_have_count(25)
    check_state(page, "list")

    # Picture or initials, name and email in one cell; the long email wraps, unclipped.
    alice = member_row(page, "alice@acme.example")
    expect(alice.locator(".cell--person")).to_contain_text("Alice Anderson")
    expect(alice.locator(".cell--person")).to_contain_text("alice@acme.example")
    expect(alice.locator(".avatar img")).to_have_count(1)  # she signed in: her picture
    bob = member_row(page, "bob@acme.example")
    expect(bob.locator(".avatar")).to_have_text("BB")  # never signed in: initials
    long_row = member_row(page, LONG_EMAIL)
    long_email = long_row.get_by_test_id("member-email")
    expect(long_email).to_have_text(LONG_EMAIL)
    assert not_clipped(long_email)
    box = long_email.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= width
    if width < 800:
        assert bob.evaluate("e => getComputedStyle(e).display") == "grid"  # a card

    # Row actions: a menu per row; "Make owner" is named by what it shows.
    remove = row_action(bob, "Remove")
    expect(remove).to_be_visible()
    make_owner = bob.get_by_role("button", name=re.compile(r"^Make owner"))
    expect(make_owner).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Transfer ownership"))).to_have_count(0)
    check_state(page, "menu-open", changed=[ROW_OF_BOB])
    page.keyboard.press("Escape")
    expect(remove).to_be_hidden()

    # An invitation with a long address: the pending panel wraps it, nothing scrolls sideways.
    open_invite_form(page)
    check_state(page, "invite-open", changed=["#invite-disclosure"])
    page.get_by_label("Email addresses").fill(LONG_INVITE)
    page.get_by_role("button", name="Send invitations").click()
    invitation = page.locator(f'[data-testid="invitation"][data-email="{LONG_INVITE}"]')
    expect(invitation).to_be_visible()
    assert not_clipped(invitation.locator(".invite-list__email"))
    check_state(page, "invited", changed=INVITE_PARTS)


# ---- an explicit, confirmed role change ---------------------------------------------------


def test_a_role_change_is_a_press_and_a_raise_asks_first(
    journey: Journey, size: tuple[int, int], posts: list[str]
) -> None:
    page = sign_in_as_alice(journey, size)
    posts.clear()  # signing in posted
    bob = member_row(page, "bob@acme.example")
    select_ = bob.get_by_test_id("role-select")

    # Two ArrowUp presses on the select (member -> admin -> owner) send nothing.
    select_.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    expect(select_).to_have_value("owner")
    page.wait_for_timeout(600)
    assert posts == []
    assert run_async(role_in_db(journey.stack, "bob@acme.example")) == "member"

    # "Change role" to admin asks, naming the person and the role; Cancel sends nothing and
    # puts the select back.
    select_.select_option("admin")
    bob.get_by_test_id("change-role").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Make Bob Brown an admin?")
    expect(dialog.get_by_test_id("confirm-accept")).to_have_text("Make admin")
    check_state(page, "confirm-raise", changed=["#confirm-dialog"])
    dialog.get_by_test_id("confirm-cancel").click()
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(300)
    assert posts == []
    expect(select_).to_have_value("member")
    assert run_async(role_in_db(journey.stack, "bob@acme.example")) == "member"

    # Confirmed: one POST, the new role, and the focus back on the row's button.
    choose_role(bob, "admin")
    confirm_dialog(page, "Make Bob Brown an admin?")
    expect(page.get_by_test_id("toast").last).to_contain_text("Bob Brown is now an admin.")
    assert len(posts) == 1
    assert posts[0].endswith("/role")
    assert run_async(role_in_db(journey.stack, "bob@acme.example")) == "admin"
    expect(bob.get_by_test_id("role-select")).to_have_value("admin")
    expect(bob.get_by_test_id("change-role")).to_be_focused()

    # Lowering (admin -> viewer) is made at once, without a question.
    choose_role(bob, "viewer")
    expect(page.get_by_test_id("toast").last).to_contain_text("Bob Brown is now a viewer.")
    expect(page.get_by_test_id("confirm-dialog")).to_be_hidden()
    assert len(posts) == 2
    assert run_async(role_in_db(journey.stack, "bob@acme.example")) == "viewer"
    assert_fits(page)
    screenshot(page, f"members-role-changed-{size[0]}")


# ---- removal: the count, the focus, the toast --------------------------------------------


def boxes_overlap(a: FloatRect, b: FloatRect) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_a_removal_leaves_a_true_count_the_focus_on_the_next_row_and_the_controls_clear(
    journey: Journey, size: tuple[int, int]
) -> None:
    run_async(add_people(journey.stack, 30))
    page = sign_in_as_alice(journey, size)
    summary = page.get_by_test_id("members-summary")
    expect(summary).to_have_text("Showing 25 of 34 members")

    bob = member_row(page, "bob@acme.example")
    bob.scroll_into_view_if_needed()
    row_action(bob, "Remove").click()
    confirm_dialog(page, "Remove Bob Brown from Acme Corp?")
    toast_shown = page.get_by_test_id("toast").last
    expect(toast_shown).to_contain_text("was removed")
    toast = toast_shown.bounding_box()
    expect(member_row(page, "bob@acme.example")).to_have_count(0)
    # The list reloads its page: 25 rows again, of 33.
    expect(summary).to_have_text("Showing 25 of 33 members")
    expect(page.get_by_test_id("member-row")).to_have_count(25)
    # The focus is on the next person's menu button, not on <body>.
    expect(page.locator("summary[id^=row-menu-]:focus")).to_have_count(1)
    assert run_async(role_in_db(journey.stack, "bob@acme.example")) is None

    # The toast covers no row action, role control or page link on screen.
    assert toast is not None
    controls = page.locator(
        "[data-testid=row-menu], [data-testid=change-role], [data-testid=role-select], .pager a"
    )
    covered = controls.evaluate_all(
        """(controls, toast) => controls
          .filter((e) => e.checkVisibility({ visibilityProperty: true }))
          .filter((e) => {
            const b = e.getBoundingClientRect();
            return b.width > 0 && b.height > 0 && !(
              b.right <= toast.x || toast.x + toast.width <= b.left ||
              b.bottom <= toast.y || toast.y + toast.height <= b.top);
          })
          .map((e) => e.outerHTML.slice(0, 80))""",
        toast,
    )
    if size[0] >= 800:
        assert covered == []
    # Nor the pager's links, scrolled to the bottom of the screen (where the toasts are).
    page.get_by_role("link", name="Next →").evaluate("e => e.scrollIntoView({block: 'end'})")
    pager = page.locator(".pager__links").bounding_box()
    region = page.locator("#toast-region").bounding_box()
    assert pager is not None
    assert region is not None
    if size[0] >= 800:
        # A toast is at most 26rem wide and stands on the bottom left.
        bottom: FloatRect = {"x": region["x"], "y": 800 - 120, "width": 26 * 16, "height": 120}
        assert not boxes_overlap(bottom, pager), (bottom, pager)
    check_state(page, "removed")


# ---- search: announced, busy while loading, no history entry per pause ---------------------


def test_search_announces_its_count_marks_the_list_busy_and_replaces_the_address(
    journey: Journey, size: tuple[int, int]
) -> None:
    run_async(add_people(journey.stack, 12))
    page = sign_in_as_alice(journey, size)
    entries = page.evaluate("history.length")
    page.evaluate(
        """() => {
          window.__busy = [];
          new MutationObserver((changes) => {
            for (const c of changes) {
              if (c.attributeName !== "aria-busy") continue;
              window.__busy.push(c.target.getAttribute("aria-busy"));
            }
          }).observe(document.getElementById("members-panel"), {attributes: true, subtree: true});
        }"""
    )
    search = page.get_by_label("Search members by name or email")
    search.press_sequentially("pag", delay=400)  # a pause after each letter: three requests
    expect(page).to_have_url(re.compile(r"/o/acme/members\?q=pag$"))
    search.press_sequentially("e0", delay=400)
    expect(page).to_have_url(re.compile(r"/o/acme/members\?q=page0$"))
    expect(page.get_by_test_id("member-row")).to_have_count(9)
    announce = page.get_by_test_id("members-announce")
    expect(announce).to_have_text("Showing 9 of 9 members matching \u201cpage0\u201d.")
    expect(announce).to_have_attribute("aria-live", "polite")
    assert page.evaluate("history.length") == entries  # replaced, never pushed
    assert "true" in page.evaluate("window.__busy")
    expect(page.locator("#members-results[aria-busy]")).to_have_count(0)
    check_state(page, "search-results")

    search.fill("nobody-matches-this")
    expect(announce).to_have_text("No member matches \u201cnobody-matches-this\u201d.")
    assert page.evaluate("history.length") == entries
    check_state(page, "search-empty", changed=["#members-panel"])


# ---- the invite form: focus and errors that go away -------------------------------------


def test_invite_focus_lands_on_the_error_or_the_success_and_errors_clear(
    journey: Journey, size: tuple[int, int]
) -> None:
    page = sign_in_as_alice(journey, size)
    journey.watch.expect_status("/o/acme/members/invitations", 422)
    open_invite_form(page)
    emails = page.get_by_label("Email addresses")
    emails.fill("carol@")
    page.get_by_role("button", name="Send invitations").click()
    error = page.get_by_test_id("invite-email-error")
    expect(error).to_contain_text("is not a valid email address")
    expect(emails).to_be_focused()  # the first invalid field, not <body>
    expect(emails).to_have_attribute("aria-invalid", "true")
    check_state(page, "invite-error", changed=["#invite-disclosure"])

    # Clearing the field clears its error.
    emails.fill("")
    expect(error).to_have_count(0)
    expect(emails).not_to_have_attribute("aria-invalid", "true")

    emails.fill("carol@acme.example")
    page.get_by_role("button", name="Send invitations").click()
    sent = page.get_by_test_id("invite-sent")
    expect(sent).to_contain_text("Invitation sent to carol@acme.example.")
    expect(sent).to_be_focused()
    expect(
        page.locator('[data-testid="invitation"][data-email="carol@acme.example"]')
    ).to_be_visible()
    expect(page.get_by_label("Email addresses")).to_have_value("")
    # The same state as "invited" (checked in the layout test above): no second audit.
    assert_fits(page)
    screenshot(page, f"members-invite-sent-{size[0]}")


# ---- keyboard only -----------------------------------------------------------------------


def test_keyboard_only_invite_role_change_and_removal(
    journey: Journey, size: tuple[int, int], posts: list[str]
) -> None:
    page = sign_in_as_alice(journey, size)
    posts.clear()  # signing in posted
    bob_id = (member_row(page, "bob@acme.example").get_attribute("id") or "").removeprefix(
        "member-"
    )
    vera_id = (member_row(page, "vera@acme.example").get_attribute("id") or "").removeprefix(
        "member-"
    )

    # Invite: open the form, type, send; the focus lands on what happened.
    tab_to(page, "[data-testid=invite-toggle]")
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    tab_to(page, "#invite-emails")
    page.keyboard.type("dora@acme.example")
    tab_to(page, "#invite-card button[type=submit]")
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("invite-sent")).to_be_focused()
    expect(
        page.locator('[data-testid="invitation"][data-email="dora@acme.example"]')
    ).to_be_visible()
    # Escape closes the invite form, the focus back on its button.
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("invite-toggle")).to_be_focused()
    expect(page.locator("#invite-disclosure[open]")).to_have_count(0)

    # Role change: ArrowUp to admin, Tab to "Change role", Space; Escape cancels the question.
    tab_to(page, f"#role-{bob_id}")
    assert_focus_ring(page)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Tab")
    expect(page.locator(f"#change-role-{bob_id}")).to_be_focused()
    assert_focus_ring(page)
    page.keyboard.press("Space")
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Make Bob Brown an admin?")
    expect(dialog.get_by_test_id("confirm-cancel")).to_be_focused()  # the safe answer first
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#change-role-{bob_id}")).to_be_focused()
    assert [p for p in posts if p.endswith("/role")] == []
    # Again, and yes (Tab to the confirming button, Enter).
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    expect(dialog.get_by_test_id("confirm-accept")).to_be_focused()
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("toast").last).to_contain_text("Bob Brown is now an admin.")
    expect(page.locator(f"#change-role-{bob_id}")).to_be_focused()
    assert run_async(role_in_db(journey.stack, "bob@acme.example")) == "admin"

    # Removal: the row's menu (Enter opens, Escape closes), Remove, confirm.
    tab_to(page, f"#row-menu-{vera_id}")
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    tab_to(page, f"#member-{vera_id} .row-menu__item--danger")
    page.keyboard.press("Escape")
    expect(page.locator(f"#row-menu-{vera_id}")).to_be_focused()
    expect(page.locator(f"#member-{vera_id} .row-menu[open]")).to_have_count(0)
    page.keyboard.press("Enter")
    tab_to(page, f"#member-{vera_id} .row-menu__item--danger")
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    expect(dialog).to_contain_text("Remove Vera Vance from Acme Corp?")
    page.keyboard.press("Tab")
    expect(dialog.get_by_test_id("confirm-accept")).to_have_text("Remove")
    page.keyboard.press("Enter")
    expect(member_row(page, "vera@acme.example")).to_have_count(0)
    expect(page.get_by_test_id("members-summary")).to_have_text("Showing 3 of 3 members")
    expect(page.locator("summary[id^=row-menu-]:focus, #members-summary:focus")).to_have_count(1)
    assert run_async(role_in_db(journey.stack, "vera@acme.example")) is None
    assert_fits(page)
    screenshot(page, f"members-keyboard-done-{size[0]}")
