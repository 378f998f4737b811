"""Profiles of the app's workers while a scenario runs (`make bench BENCH_ARGS="--profile"`).

py-spy samples each worker for the length of the scenario's run; the raw stacks are summed per
function (inclusive: a function counts once per sample it is on the stack) so that the table
says where a request's time goes. py-spy is not a dependency of the project: install it with
`uv pip install --target /tmp/pyspy py-spy` and point `PYSPY` at `/tmp/pyspy/bin/py-spy`
(with `PYTHONPATH=/tmp/pyspy`), or have `py-spy` on PATH.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
from pathlib import Path

# A frame in py-spy's raw output: "function (path/to/file.py:line)".
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")


def py_spy() -> list[str]:
    found = os.environ.get("PYSPY") or shutil.which("py-spy")
    if not found:
        raise SystemExit(
            "--profile needs py-spy: uv pip install --target /tmp/pyspy py-spy, then "
            "PYSPY=/tmp/pyspy/bin/py-spy PYTHONPATH=/tmp/pyspy make bench BENCH_ARGS=--profile"
        )
    return [found]


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Sample `pid` for `seconds` into `out` (py-spy's raw format), in the background."""
    return subprocess.Popen(
        [
            *py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _short(function: str, path: str) -> str:
    for marker in ("site-packages/", "/saas/", "/bench/"):
        if path.startswith(marker.lstrip("/")):
            break
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker != "site-packages/":
                path = marker.strip("/") + "/" + path
            break
    return f"{function} ({path})"


# Where a sample's time goes: the first of these its stack shows, from the running function
# outwards (a Jinja filter written in the app counts as rendering, SQLAlchemy's call into
# asyncpg as the driver).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PostgreSQL driver (asyncpg)", ("asyncpg/",)),
    ("Redis client", ("redis/",)),
    ("JWT and crypto", ("jwt/", "cryptography/")),
    ("ORM loading (rows to objects)", ("sqlalchemy/orm/loading.py", "sqlalchemy/orm/state.py")),
    ("SQLAlchemy (compile, execute, session)", ("sqlalchemy/", "advanced_alchemy/")),
    ("Jinja rendering", ("jinja2/", ".html", "markupsafe/")),
    ("msgspec / JSON", ("msgspec/",)),
    ("structlog", ("structlog/",)),
    ("app code (saas/)", ("saas/",)),
    ("Litestar (routing, DI, middleware, responses)", ("litestar/",)),
    ("uvicorn and the event loop", ("uvicorn/", "asyncio/", "uvloop", "h11/", "httptools")),
)


def _frames(line: str) -> tuple[list[tuple[str, str]], int] | None:
    stack, _, count_text = line.rpartition(" ")
    if not stack or not count_text.isdigit():
        return None
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if match is not None:
            frames.append((match["function"], match["path"]))
    return frames, int(count_text)


def summarize(raw_files: list[Path], top: int = 12) -> list[tuple[str, float]]:
    """Shares of the samples: by category (see CATEGORIES, exclusive, summing to 100%), then
    the app's own `top` functions by inclusive share."""
    by_category: collections.Counter[str] = collections.Counter()
    app_inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for raw in raw_files:
        if not raw.exists():
            continue
        for line in raw.read_text(errors="replace").splitlines():
            parsed = _frames(line)
            if parsed is None:
                continue
            frames, count = parsed
            total += count
            category = "other"
            for _function, path in reversed(frames):  # the running function first
                found = next(
                    (name for name, marks in CATEGORIES if any(m in path for m in marks)), None
                )
                if found is not None:
                    category = found
                    break
            by_category[category] += count
            seen: set[str] = set()
            for function, path in frames:
                # Middleware wraps every request: its inclusive share says nothing.
                wrapper = "middleware" in function or function.endswith(
                    ("__call__", "_answer_what_escaped")
                )
                if (path.startswith("saas/") or "/saas/" in path) and not wrapper:
                    name = _short(function, path)
                    if name not in seen:
                        seen.add(name)
                        app_inclusive[name] += count
    if not total:
        return []
    shares = [(name, count / total) for name, count in by_category.most_common()]
    shares += [("  " + name, count / total) for name, count in app_inclusive.most_common(top)]
    return shares


def report(label: str, shares: list[tuple[str, float]]) -> str:
    lines = [
        f"Profile: {label}: share of the samples by category, then the app's own functions "
        "(inclusive)"
    ]
    lines += [f"  {share:6.1%}  {name}" for name, share in shares]
    return "\n".join(lines)
