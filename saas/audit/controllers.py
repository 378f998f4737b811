"""The audit log page: who did what to whom, and when; filtered by action and actor, loading
older events as the reader scrolls (keyset pagination on (created_at, id), newest first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import AuditEntry, OrganizationAuditLog, audit_cursor
from saas.audit.wording import describe_details, describe_target
from saas.db.keyset import Cursor
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.htmx import VARY, is_fragment
from saas.web.pages import page_context

PAGE_SIZE = 50

# What each action reads like in the log ("Alice <verb> Bob"), by stored value.
ACTION_LABELS: dict[str, str] = {action.value: action.label for action in AuditAction}
# Recorded for a person, not an organization ("Your sessions"): never in an organization's log,
# so not offered as a filter there.
PERSONAL_ACTIONS = frozenset({AuditAction.SESSION_ENDED})
ORGANIZATION_ACTIONS = sorted(set(AuditAction) - PERSONAL_ACTIONS)


@dataclass
class AuditListing:
    entries: list[AuditEntry]
    cursor: Cursor | None
    action: str
    actor: str
    base_url: str

    def url(self, **changes: Any) -> str:
        params = {"action": self.action, "actor": self.actor, **changes}
        clean = {k: v for k, v in params.items() if v}
        return self.base_url + ("?" + urlencode(clean) if clean else "")

    @property
    def more_url(self) -> str | None:
        return self.url(before=self.cursor.encode()) if self.cursor else None


class AuditController(Controller):
    path = "/audit"

    @get("/", name="audit.list", guards=[requires(Permission.AUDIT_READ)], cache=False)
    async def audit_log(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        audit: NamedDependency[OrganizationAuditLog],
        action: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
    ) -> Template:
        # Only a known action filters; anything else shows every action.
        known_action = AuditAction.parse((action or "").strip())
        action_filter = known_action.value if known_action else ""
        actor_filter = (actor or "").strip()[:200]
        cursor = audit_cursor(before)
        entries, next_cursor = await audit.page(
            action=action_filter or None,
            actor=actor_filter or None,
            before=cursor,
            limit=PAGE_SIZE,
        )
        listing = AuditListing(
            entries=entries,
            cursor=next_cursor,
            action=action_filter,
            actor=actor_filter,
            base_url=request.app.route_reverse("audit.list", slug=tenant.organization.slug),
        )
        context = {
            "listing": listing,
            "labels": ACTION_LABELS,
            "describe_target": describe_target,
            "describe_details": describe_details,
            "is_more": cursor is not None,
        }
        if is_fragment(request):
            # More rows for the scroll sentinel, or the filtered results for the filter form.
            if cursor:
                return Template(
                    "partials/audit_rows.html", context={"tenant": tenant, **context}, headers=VARY
                )
            # The filter form pushes its URL; this one leaves out the empty filters.
            return HTMXTemplate(
                template_name="partials/audit_results.html",
                context={"tenant": tenant, **context},
                push_url=listing.url(),
                headers=VARY,
            )
        return Template(
            "pages/audit.html",
            context=await page_context(tenant, db_session, actions=ORGANIZATION_ACTIONS, **context),
            headers=VARY,
        )
