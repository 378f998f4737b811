"""``/v2/logout`` (Auth0's own) and ``/oidc/logout`` (RP-initiated logout).

Both end the IdP session and redirect only to an allow-listed URL of the client; anything
else gets an error page, never a redirect (an open redirect on the IdP's origin would be a
phishing gift).
"""

from __future__ import annotations

from typing import Any

import jwt
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store, tokens
from saas.devidp.context import Db, DevIdp, get_idp
from saas.devidp.errors import HtmlError, add_query
from saas.devidp.models import Client
from saas.devidp.session import clear_session_cookie, end_session


def _not_allowed(url: str) -> HtmlError:
    return HtmlError(
        400,
        "Logout URL not allowed",
        f"{url!r} is not in the list of allowed logout URLs of the application. "
        "You have been signed out of the development IdP.",
    )


@get("/v2/logout")
async def auth0_logout(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Any]:
    idp = get_idp(state)
    client_id = request.query_params.get("client_id")
    return_to = request.query_params.get("returnTo")
    await end_session(request, db)
    await db.commit()
    cookie = clear_session_cookie(idp)
    if client_id:
        client = await store.get_client(db, client_id)
        if client is None:
            raise HtmlError(
                400, "Unknown application", f"No application with client_id {client_id!r}."
            )
        allowed = list(client.allowed_logout_urls)
    else:
        # Without client_id Auth0 checks the tenant-wide list; here that is every client's list.
        allowed = [url for c in await db.scalars(select(Client)) for url in c.allowed_logout_urls]
    if return_to:
        if return_to not in allowed:
            raise _not_allowed(return_to)
        return Redirect(return_to, cookies=[cookie])
    if client_id and allowed:
        return Redirect(allowed[0], cookies=[cookie])
    return Template(template_name="logged_out.html", context={}, cookies=[cookie])


def _invalid_logout(description: str) -> HtmlError:
    return HtmlError(400, "Invalid logout request", description)


async def _hinted_client(idp: DevIdp, db: AsyncSession, hint: str) -> Client:
    """The application an `id_token_hint` was issued to, or an error page.

    It must be an ID token this IdP signed (signature and issuer; an expired one is still a
    good hint, as RP-Initiated Logout 1.0 §2 asks); Auth0 reads its `aud` to pick the
    application whose Allowed Logout URLs apply. An access token is no ID token: its audience
    is an API (and /userinfo), not an application, so it identifies nobody here."""
    try:
        claims = tokens.verify(idp, hint, audience=None, verify_exp=False)
    except jwt.InvalidTokenError:
        raise _invalid_logout("The id_token_hint is not valid.") from None
    aud = claims.get("aud")
    client = await store.get_client(db, aud) if isinstance(aud, str) else None
    if client is None or "authorization_code" not in client.grant_types:
        raise _invalid_logout("The id_token_hint was not issued to an application.")
    return client


@get("/oidc/logout")
async def oidc_logout(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Any]:
    """Auth0's RP-Initiated Logout (https://auth0.com/docs/api/authentication/logout/oidc-logout):

    * with `id_token_hint`, its `aud` names the application; a `client_id` sent as well must be
      that same application ("If providing both id_token_hint and client_id, the client_id
      value must match the aud claim from the id_token_hint");
    * `post_logout_redirect_uri` must be one of that application's Allowed Logout URLs, exactly;
    * with `client_id` alone and no `post_logout_redirect_uri`, the user goes to the first
      Allowed Logout URL.
    Every refusal is a page here, never a redirect."""
    idp = get_idp(state)
    query = request.query_params
    client_id = query.get("client_id")
    hint = query.get("id_token_hint")
    redirect_uri = query.get("post_logout_redirect_uri")
    client: Client | None = None
    if hint:
        client = await _hinted_client(idp, db, hint)
        if client_id and client_id != client.client_id:
            raise _invalid_logout("client_id does not match id_token_hint.")
    elif client_id:
        client = await store.get_client(db, client_id)
        if client is None:
            raise HtmlError(
                400, "Unknown application", f"No application with client_id {client_id!r}."
            )
    await end_session(request, db)
    await db.commit()
    cookie = clear_session_cookie(idp)
    if redirect_uri:
        if client is None:
            raise _invalid_logout(
                "post_logout_redirect_uri needs client_id or id_token_hint "
                "to identify the application."
            )
        if redirect_uri not in client.allowed_logout_urls:
            raise _not_allowed(redirect_uri)
        return Redirect(add_query(redirect_uri, {"state": query.get("state")}), cookies=[cookie])
    if client is not None and not hint and client.allowed_logout_urls:
        return Redirect(client.allowed_logout_urls[0], cookies=[cookie])
    return Template(template_name="logged_out.html", context={}, cookies=[cookie])
