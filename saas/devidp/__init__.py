"""The embedded, Auth0-compatible development identity provider.

It runs as its own Litestar app on its own origin (see ``create_devidp_app``) so that the
starter can be tried and tested end to end without an Auth0 account. It is strict where
Auth0 is strict, because a lax fake hides bugs that production would reveal.
"""
