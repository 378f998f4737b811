"""Enterprise sign-in against the dev IdP behaving as Auth0 does, on both database backends.

* Require-SSO decides by the connection claim the tenant's post-login Action adds
  (`api.idToken.setCustomClaim(<claim>, event.connection.name)`), not by the user id: Auth0's
  Microsoft Entra ID (`waad`) and Google Workspace (`google-apps`) user ids have two parts and
  name no connection (https://auth0.com/docs/users/identify-users: `{identity provider
  id}|{unique id in the provider}`). Without the Action, require-SSO organizations refuse
  everyone (fail closed) and the others are unaffected.
* An ID token without an email is completed from `/userinfo` (OpenID Connect Core 1.0 §5.4).
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import select

from saas.audit.services import Actor
from saas.db.config import standalone_session
from saas.db.models import User
from saas.login import errors
from saas.organizations.services import OrganizationService
from tests.support.stack import Stack

SSO_REQUIRED_TITLE = str(escape(errors.SsoRequired.title))


# No outbox: it would bring the test organization's enabled connection at the dev IdP in
# line with the app's rows while the test signs in through it.
pytestmark = pytest.mark.stack(outbox_worker_enabled=False)


def tenant(stack: Stack, **changes: bool) -> None:
    """Change the simulated Auth0 tenant's configuration (saas/devidp/tenant.py)."""
    answer = httpx.patch(stack.idp_url + "/__dev/tenant", json=changes, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() | changes == answer.json()


async def _app_organization(
    stack: Stack,
    *,
    slug: str,
    domain: str,
    connection: str,
    strategy: str,
    auth0_ids: tuple[str, str],
) -> None:
    auth0_org_id, auth0_connection_id = auth0_ids
    async with standalone_session(stack.settings) as session:
        orgs = OrganizationService(session=session)
        actor = Actor.system()
        org = await orgs.create_organization(
            slug=slug,
            display_name=slug.capitalize(),
            actor=actor,
            jit_provisioning=True,
            require_sso=True,
            auth0_org_id=auth0_org_id,
        )
        await orgs.add_domain(organization_id=org.id, domain=domain, actor=actor, verified=True)
        await orgs.add_connection(
            organization_id=org.id,
            name=connection,
            strategy=strategy,
            display_name=f"{slug.capitalize()} single sign-on",
            auth0_connection_id=auth0_connection_id,
            actor=actor,
        )
        await session.commit()


def enterprise_organization(stack: Stack, *, slug: str, strategy: str) -> str:
    """An organization that requires SSO through a `strategy` connection, at Auth0 (the dev
    IdP, through its Management API) and in the app, with just-in-time membership on both."""
    domain = f"{slug}.example"
    name = f"{slug}-{strategy}"
    with stack.management() as management:
        connection = management.post(
            "/connections",
            json={
                "name": name,
                "strategy": strategy,
                "options": {"domain_aliases": [domain]},
                "enabled_clients": [stack.settings.auth0_client_id],
            },
        )
        assert connection.status_code == 201, connection.text
        org = management.post(
            "/organizations",
            json={
                "name": slug,
                "enabled_connections": [
                    {"connection_id": connection.json()["id"], "assign_membership_on_login": True}
                ],
            },
        )
        assert org.status_code == 201, org.text
    ids = (org.json()["id"], connection.json()["id"])
    asyncio.run(
        _app_organization(
            stack, slug=slug, domain=domain, connection=name, strategy=strategy, auth0_ids=ids
        )
    )
    return domain


async def _sub_of(stack: Stack, email: str) -> str:
    async with standalone_session(stack.settings) as session:
        sub = await session.scalar(select(User.sub).where(User.email == email))
    assert sub is not None
    return sub


TWO_PART_IDS = {
    # Google Workspace: `google-apps|<email>` (or Google's id with map_user_id_to_id).
    "google-apps": lambda email: re.compile(rf"google-apps\|{re.escape(email)}"),
    # Microsoft Entra ID: `waad|<object id or sub>`.
    "waad": lambda _email: re.compile(r"waad\|[0-9a-f]{24}"),
}


@pytest.mark.parametrize("strategy", sorted(TWO_PART_IDS))
def test_two_part_user_ids_sign_in_to_a_require_sso_organization(
    stack: Stack, strategy: str
) -> None:
    domain = enterprise_organization(stack, slug="umbrella", strategy=strategy)
    email = f"kim@{domain}"
    browser = stack.browser()
    page = browser.login(email)
    assert page.status_code == 200, page.text
    assert str(page.url) == stack.app_url + "/o/umbrella/"
    sub = asyncio.run(_sub_of(stack, email))
    assert TWO_PART_IDS[strategy](email).fullmatch(sub), sub
    assert len(sub.split("|")) == 2
    browser.close()


def test_without_the_action_require_sso_organizations_refuse_everyone(stack: Stack) -> None:
    """A tenant without the post-login Action: nothing proves which connection anyone came
    through, so Acme (require-SSO) refuses even its own SAML users, three-part ids and all;
    Globex, which does not require SSO, signs its people in as before."""
    tenant(stack, connection_claim_action=False)
    refused = stack.browser().login("alice@acme.example")
    assert refused.status_code == 403, refused.text
    assert SSO_REQUIRED_TITLE in refused.text
    globex = stack.browser().login("gina@globex.example")
    assert globex.status_code == 200, globex.text
    assert str(globex.url) == stack.app_url + "/o/globex/"
    # Deploy the Action again: the same person gets in.
    tenant(stack, connection_claim_action=True)
    admitted = stack.browser().login("alice@acme.example")
    assert admitted.status_code == 200, admitted.text
    assert str(admitted.url) == stack.app_url + "/o/acme/"


def test_the_email_comes_from_userinfo_when_the_id_token_has_none(stack: Stack) -> None:
    tenant(stack, email_in_id_token=False)
    page = stack.browser().login("alice@acme.example")
    assert page.status_code == 200, page.text
    assert str(page.url) == stack.app_url + "/o/acme/"
