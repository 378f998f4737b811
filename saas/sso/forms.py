"""The enterprise-connection form, shared by the tenant's SSO settings and the operator's
onboarding: its fields, and their validation into a `ValidatedConnection`.

Validating an OIDC connection fetches its discovery document: callers run it before anything
is read or written, since no transaction may be open during a network call.
"""

from __future__ import annotations

import httpx
from msgspec import Struct

from saas.config import Settings
from saas.errors import InvalidInput
from saas.http import tls_context
from saas.sso.validation import (
    ValidatedConnection,
    validate_oidc,
    validate_saml_endpoint,
    validate_saml_metadata,
)
from saas.web.input import MultiLine, SingleLine


class SsoForm(Struct):
    strategy: SingleLine = ""
    display_name: SingleLine = ""
    assign_membership_on_login: SingleLine = ""
    metadata_xml: MultiLine = ""
    sign_in_url: SingleLine = ""
    signing_cert: MultiLine = ""
    discovery_url: SingleLine = ""
    client_id: SingleLine = ""
    client_secret: SingleLine = ""


async def validate_form(form: SsoForm, settings: Settings) -> ValidatedConnection:
    allow_loopback = not settings.is_production
    if form.strategy == "samlp":
        if form.metadata_xml.strip():
            return validate_saml_metadata(form.metadata_xml, allow_loopback_http=allow_loopback)
        if form.sign_in_url.strip() or form.signing_cert.strip():
            return validate_saml_endpoint(
                form.sign_in_url, form.signing_cert, allow_loopback_http=allow_loopback
            )
        raise InvalidInput(
            "Paste the IdP's metadata XML, or give its sign-in URL and signing certificate.",
            field="metadata_xml",
        )
    if form.strategy == "oidc":
        async with httpx.AsyncClient(verify=tls_context()) as http:
            return await validate_oidc(
                form.discovery_url,
                form.client_id,
                form.client_secret,
                http,
                allow_loopback_http=allow_loopback,
            )
    raise InvalidInput("Choose SAML or OpenID Connect.", field="strategy")
