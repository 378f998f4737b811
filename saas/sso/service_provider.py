"""What the customer's identity provider must be told about us: the service-provider values of
one organization's connection, and the SAML metadata document that carries them.

Auth0 is the service provider of an enterprise connection, so the values are Auth0's, per
connection name:

- SAML post-back (Assertion Consumer Service) URL `https://{domain}/login/callback?connection={name}`
  and entity ID `urn:auth0:{tenant}:{name}`; the response binding is HTTP-POST and the NameID
  format "unspecified" (Auth0 docs, "SAML Identity Provider Configuration Settings",
  https://auth0.com/docs/authenticate/protocols/saml/saml-identity-provider-configuration-settings,
  and "Connect Your App to SAML Identity Providers",
  https://auth0.com/docs/authenticate/identity-providers/enterprise-identity-providers/saml).
  With a custom domain, the custom domain replaces the Auth0 domain in the URL (same page);
  the tenant is the tenant's name, the first label of its canonical `{tenant}.{region}.auth0.com`
  domain (`AUTH0_MANAGEMENT_DOMAIN` when a custom domain is in use, else `AUTH0_DOMAIN`).
- OpenID Connect redirect URI `https://{domain}/login/callback` (Auth0 docs, "Connect to
  OpenID Connect Identity Provider",
  https://auth0.com/docs/authenticate/identity-providers/enterprise-identity-providers/oidc).

The development IdP keeps Auth0's paths and names its tenant `devidp`; it simulates the
customer's IdP with a sign-in page of its own per connection (`/u/login/<name>`), so in
development nothing needs to be pasted anywhere, but the values have the shape they will have.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from saas.config import Settings

DEV_IDP_TENANT = "devidp"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


@dataclass(frozen=True, slots=True)
class ServiceProviderValues:
    connection_name: str
    acs_url: str
    entity_id: str
    oidc_redirect_uri: str


def auth0_tenant_name(settings: Settings) -> str:
    if settings.uses_dev_idp:
        return DEV_IDP_TENANT
    host = urlsplit(settings.auth0_management_base_url).hostname or ""
    return host.split(".", 1)[0]


def service_provider_values(settings: Settings, connection_name: str) -> ServiceProviderValues:
    base = settings.auth0_base_url  # the domain people sign in on: a custom one where set
    return ServiceProviderValues(
        connection_name=connection_name,
        acs_url=f"{base}/login/callback?connection={quote(connection_name, safe='')}",
        entity_id=f"urn:auth0:{auth0_tenant_name(settings)}:{connection_name}",
        oidc_redirect_uri=f"{base}/login/callback",
    )


def saml_metadata(values: ServiceProviderValues) -> bytes:
    """SAML 2.0 metadata (OASIS saml-metadata-2.0-os §2.4.4) for the service provider: its
    entity ID and its one Assertion Consumer Service, HTTP-POST. Built as XML, so every value
    is escaped."""
    ElementTree.register_namespace("md", MD)
    root = ElementTree.Element(f"{{{MD}}}EntityDescriptor", {"entityID": values.entity_id})
    sp = ElementTree.SubElement(
        root,
        f"{{{MD}}}SPSSODescriptor",
        {
            "protocolSupportEnumeration": "urn:oasis:names:tc:SAML:2.0:protocol",
            "AuthnRequestsSigned": "false",
            "WantAssertionsSigned": "true",
        },
    )
    ElementTree.SubElement(sp, f"{{{MD}}}NameIDFormat").text = NAMEID_UNSPECIFIED
    ElementTree.SubElement(
        sp,
        f"{{{MD}}}AssertionConsumerService",
        {"Binding": HTTP_POST, "Location": values.acs_url, "index": "0", "isDefault": "true"},
    )
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
