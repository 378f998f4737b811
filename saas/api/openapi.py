"""OpenAPI for the JSON API, browsable at /api/docs (only API routes are documented)."""

from __future__ import annotations

from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from saas.web.security import CSP_OPT, DOCS_CSP

DESCRIPTION = """\
Tenant API. Authenticate with an Auth0 access token for this API's audience, issued for the
organization in the path (`Authorization: Bearer <token>`; the token's `org_id` must match).

`{org}` is the organization's slug (`acme`) or its Auth0 organization id (`org_...`).
Members are addressed by their membership id (`id` in the member list). The member list is
cursor-paginated (`limit` 1-100, then `after=<next_cursor>` or `before=<previous_cursor>`), so
every page costs the same however large the organization; invitations and projects take `limit`
and `offset`. Members and projects also take `q` (search). Errors are RFC 9457 problem details
(`application/problem+json`).

An organization that requires multi-factor authentication takes only tokens of a sign-in that
passed it (the tenant's post-login Action lists the sign-in's methods in the token); any other
token of its members gets 403 with `"code": "mfa_required"`: authorize again, interactively,
with `acr_values=http://schemas.openid.net/pape/policies/2007/06/multi-factor`.
"""


def create_openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="SaaS Starter API",
        version="1.0.0",
        description=DESCRIPTION,
        # Its own router, to name the policy its CDN-loaded renderer needs.
        openapi_router=Router(
            "/api/docs", route_handlers=[], include_in_schema=False, opt={CSP_OPT: DOCS_CSP}
        ),
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An Auth0 access token (RS256) for this API's audience.",
                )
            }
        ),
    )
