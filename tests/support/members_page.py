"""Driving the members page in a browser test: the invite disclosure, the explicit role change,
the confirmation dialog and the per-row menu (templates/pages/members.html)."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.support.layout import horizontal_overflow as horizontal_overflow


def member_row(page: Page, email: str) -> Locator:
    return page.locator(f'[data-testid="member-row"][data-email="{email}"]')


def open_invite_form(page: Page) -> None:
    """The list comes first: "Invite people" opens the invite form."""
    page.get_by_test_id("invite-toggle").click()
    expect(page.get_by_label("Email addresses")).to_be_visible()


def choose_role(row: Locator, role: str) -> None:
    """Pick a role and press "Change role" (a change of the select alone saves nothing)."""
    row.get_by_test_id("role-select").select_option(role)
    row.get_by_test_id("change-role").click()


def confirm_dialog(page: Page, expected: str | re.Pattern[str]) -> None:
    """The page's confirmation dialog asks `expected`; say yes."""
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(expected)
    dialog.get_by_test_id("confirm-accept").click()
    expect(dialog).to_be_hidden()


def row_action(row: Locator, name: str) -> Locator:
    """A row's action, in its menu (opened here)."""
    row.get_by_test_id("row-menu").click()
    return row.get_by_role("button", name=name)
