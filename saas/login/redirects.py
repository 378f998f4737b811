"""Where to send a browser after login: relative paths on this site only (no open redirect)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

DEFAULT_AFTER_LOGIN = "/"


def safe_next(candidate: str | None, default: str = DEFAULT_AFTER_LOGIN) -> str:
    if not candidate or len(candidate) > 2048:
        return default
    if any(ord(ch) < 0x20 or ch == "\\" for ch in candidate):
        return default
    parts = urlsplit(candidate)
    # "//evil.example" and "/\evil.example" are protocol-relative in browsers.
    if parts.scheme or parts.netloc or not candidate.startswith("/") or candidate.startswith("//"):
        return default
    return candidate


def sign_in_location(login_path: str, path: str, query: str = "") -> str:
    """`login_path` with `next` set to bring the browser back to `path?query` afterwards.

    `path` is the decoded request path, which may hold any character a client percent-encoded,
    CR and LF included: quoted whole, it stays one query value in one header line.
    """
    target = path + (f"?{query}" if query else "")
    return f"{login_path}?next={quote(target, safe='')}"
