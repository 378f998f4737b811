"""One way to show a date on every page: the `date` Jinja filter.

"Dec 2, 2026" for a date, "Dec 2, 2026, 14:05 UTC" with `time=True`. Stored times are UTC (naive
ones are taken as UTC); pages say so rather than guess the reader's zone. The machine-readable
value goes beside it in `<time datetime="…">`.
"""

from __future__ import annotations

import datetime


def format_date(value: datetime.datetime | datetime.date | None, *, time: bool = False) -> str:
    if value is None:
        return ""
    text = f"{value:%b} {value.day}, {value.year}"
    if time and isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        text += f", {value:%H:%M} UTC"
    return text


FILTERS = {"date": format_date}
