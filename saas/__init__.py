"""Multi-tenant B2B SaaS starter."""

import warnings

import authlib.deprecate  # noqa: F401  (its import installs an "always" filter; ours must follow it)

# Authlib nudges towards the httpx2 fork when it is not installed; httpx is its documented,
# supported fallback, and the notice would otherwise open every CLI command's output.
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
