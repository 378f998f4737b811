"""Mailbox providers anyone can sign up at: never a company's verified domain."""

from __future__ import annotations

CONSUMER_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me",
        "protonmail.com", "pm.me", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
        "yandex.com", "yandex.ru", "zoho.com", "fastmail.com", "hey.com", "tutanota.com",
        "qq.com", "163.com", "126.com", "naver.com", "mail.ru",
    }
)  # fmt: skip


def is_consumer_domain(domain: str) -> bool:
    return domain in CONSUMER_DOMAINS
