"""`make bench`: the app as it runs in production, on the large tenant set, under wrk.

What runs (all on loopback, all stopped and the database dropped on exit, Ctrl-C included):
- PostgreSQL database `saas_bench`, filled by `bench.datagen` through the real migrations;
- the dev IdP (uvicorn, APP_ENV=development) standing in for Auth0: AUTH0_DOMAIN points at it;
- the app: `uvicorn saas.asgi:app --workers N` with APP_ENV=production, secrets generated for
  this run, Redis sessions (REDIS_URL), PostgreSQL. Production refuses an http APP_BASE_URL, so
  APP_BASE_URL is `https://127.0.0.1:<port>` while uvicorn serves plain http on that port: TLS
  would sit in a reverse proxy in front, and the `__Host-`/Secure cookies are simply sent back
  as headers by the load generator;
- the baseline: `bench/baseline.py`, a bare Litestar handler, under the same uvicorn settings;
- the floor: `bench/floor.py`, a bare handler doing the members fragment's real work and nothing
  else (the session from Redis, the page's statements through raw asyncpg, the same templates),
  checked to answer the app's own body before it is timed.

Sessions and tokens are made the way the app would have made them after a real sign-in: the
session is written to the app's own Redis session store (`saas.login.sessions.create_stores`);
the API token is signed RS256 with the dev IdP's own signing key (the key file it serves in its
JWKS), so the app verifies it exactly like a token from the IdP's /oauth/token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import datagen, profile
from saas.config import PROJECT_ROOT

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROFILES_DIR = RESULTS_DIR / "profiles"  # py-spy's raw stacks, one file per scenario and worker
BENCH_DB_URL = "postgresql://postgres@127.0.0.1:5432/saas_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
# A first name (about 1,800 matches, together in name order) and a full name (about 50).
SEARCH_TERM = "nadia"
SEARCH_NAME = "nadia petrov"
OWNER_PERMISSIONS = [
    "org:read",
    "members:read",
    "projects:write",
    "members:invite",
    "members:manage",
    "org:manage",
    "audit:read",
    "org:delete",
    "ownership",
]

# Targets from issue 17 (2-core machine; ratios to the baseline and the floor in the same run).
TARGET_FRAGMENT_RATIO = 0.05  # of the bare handler
TARGET_FRAGMENT_FLOOR_RATIO = 0.50  # of the floor (bench/floor.py)
TARGET_FRAGMENT_P99_MS = 50.0
TARGET_SEARCH_RATIO = 0.02  # searches, fragment and API
TARGET_SEARCH_P99_MS = 150.0
TARGET_API_RATIO = 0.07
TARGET_LOGIN_RATIO = 0.03
TARGET_AUTH_VS_RAW = 1.5
TARGET_RESOLVE_VS_RAW = 3.0
TARGET_FRAGMENT_STATEMENTS = 4
# The app's workers may grow by this much from the end of the first app scenario to the end
# of the run (allocator and statement caches settle in the first one); more is a leak.
TARGET_RSS_GROWTH = 0.10
# A one-, two-letter search term: bounded like any other (no scan of the organization).
SEARCH_SHORT = "na"

# What a members page that asks Auth0 per view (Auth0's SaaStart sample does) could serve at
# most: the Management API's own limits, per tenant, for all of its callers together.
AUTH0_LIMITS = (
    "Auth0's Management API limits a members page that asks Auth0 per view: 2 requests/s on a "
    "Free tenant, 16/s sustained (50/s peak) on paid and Enterprise production tenants, and "
    "'Get Members of an Organization' alone 200/minute (3.3/s) on a 100-RPS Private Cloud "
    "(auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy/"
    "rate-limit-configurations; /docs/understand-rate-limit-burst-capability). This app reads "
    "members from its own database and calls Auth0 only from the outbox."
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- machine ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# ---- processes -------------------------------------------------------------------------------


class Processes:
    """Servers this run started; each in its own process group, stopped by its own id."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def wait_http(url: str, proc: subprocess.Popen[bytes], name: str, log_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{name} exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not answer at {url}")


# ---- wrk -------------------------------------------------------------------------------------

LUA = r"""
wrk.method = "%(method)s"
%(body)s
%(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) unexpected = 0 end
function response(status, headers, body)
  if status ~= %(expected)d then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("unexpected") end
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\"requests\":%%d,\"duration_us\":%%d,\"connect\":%%d,\"read\":%%d," ..
    "\"write\":%%d,\"status\":%%d,\"timeout\":%%d,\"unexpected\":%%d," ..
    "\"p50\":%%d,\"p95\":%%d,\"p99\":%%d,\"max\":%%d}\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def lua_quote(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def wrk_script(
    path: Path, *, method: str, headers: dict[str, str], body: str | None, expected: int
) -> Path:
    lines = [f"wrk.headers[{lua_quote(k)}] = {lua_quote(v)}" for k, v in headers.items()]
    path.write_text(
        LUA
        % {
            "method": method,
            "body": f"wrk.body = {lua_quote(body)}" if body is not None else "",
            "headers": "\n".join(lines),
            "expected": expected,
        }
    )
    return path


@dataclass
class Scenario:
    key: str
    label: str
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expected: int = 200
    statements: int | None = None


@dataclass
class Result:
    key: str
    label: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    ratio: float | None = None
    floor_ratio: float | None = None
    statements: int | None = None
    # The app's workers' resident size after this scenario (app scenarios only), MiB.
    rss_mib: list[float] | None = None


def worker_pids(parent_pid: int) -> list[int]:
    """uvicorn's workers: the children of `parent_pid` that multiprocessing spawned to run the
    app (its resource tracker is spawned too, and is not one); with one worker, the server
    itself."""
    pids: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[1] == str(parent_pid) and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return sorted(pids) or [parent_pid]


def worker_rss_mib(parent_pid: int) -> list[float]:
    """Resident size of each of uvicorn's workers, from /proc, MiB."""
    sizes: list[float] = []
    for pid in worker_pids(parent_pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
    return sorted(sizes)


def run_wrk(
    scenario: Scenario,
    script_dir: Path,
    *,
    connections: int,
    threads: int,
    duration: int,
    warmup: int,
) -> Result:
    script = wrk_script(
        script_dir / f"{scenario.key}.lua",
        method=scenario.method,
        headers=scenario.headers,
        body=scenario.body,
        expected=scenario.expected,
    )
    base = ["wrk", f"-t{threads}", f"-c{connections}", "--timeout", "5s", "-s", str(script)]
    if warmup:
        subprocess.run([*base, f"-d{warmup}s", scenario.url], capture_output=True, check=True)
    out = subprocess.run(
        [*base, "--latency", f"-d{duration}s", scenario.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if not match:
        raise SystemExit(f"wrk gave no summary for {scenario.key}:\n{out}")
    data = json.loads(match[1])
    errors = sum(data[k] for k in ("connect", "read", "write", "timeout", "unexpected"))
    if data["requests"] == 0:
        errors = max(errors, 1)  # nothing came back in time: that is a failure, not 0 ms
    return Result(
        key=scenario.key,
        label=scenario.label,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        requests=data["requests"],
        errors=errors,
        statements=scenario.statements,
    )


def settle(database_url: str, app_url: str, timeout: float = 60.0) -> None:
    """Wait until the previous scenario's backlog has drained, so it is not billed to the next
    one: wrk gives up on slow requests, but the app still serves them (and runs their queries).
    Drained means PostgreSQL idle on four checks in a row and the app answering at once."""
    import asyncpg

    async def active() -> int:
        conn = await asyncpg.connect(datagen.sync_url(database_url))
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'active' AND pid <> pg_backend_pid()"
                )
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    idle_checks = 0
    while time.monotonic() < deadline and idle_checks < 4:
        idle_checks = idle_checks + 1 if asyncio.run(active()) == 0 else 0
        time.sleep(0.25)
    while time.monotonic() < deadline:
        started = time.perf_counter()
        httpx.get(app_url + "/health", timeout=30)
        if time.perf_counter() - started < 0.05:
            break
        time.sleep(0.25)
    time.sleep(0.5)


# ---- identities: a session and an access token, as a real sign-in would have made them ---------


async def bench_identity(database_url: str, depths: tuple[int, int]) -> dict[str, str]:
    """Who the benchmark signs in as, and cursors at two depths of the big org's name order."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from saas.db.keyset import Cursor
    from saas.db.models import Membership, Organization, User

    engine = create_async_engine(datagen.async_url(database_url))
    try:
        async with engine.connect() as conn:
            org = (
                await conn.execute(
                    select(Organization).where(Organization.slug == datagen.BIG_SLUG)
                )
            ).one()
            owner = (await conn.execute(select(User).where(User.sub == datagen.OWNER_SUB))).one()
            small = (
                await conn.execute(
                    select(Organization.slug, User.id, Organization.id, User.sub)
                    .join(Membership, Membership.organization_id == Organization.id)
                    .join(User, User.id == Membership.user_id)
                    .where(Organization.slug == "tenant-0001", Membership.role == "owner")
                )
            ).one()
            cursors = []
            for depth in depths:  # the member at this position, sorted by name as the page is
                name, user_id = (
                    await conn.execute(
                        select(User.name, User.id)
                        .join(Membership, Membership.user_id == User.id)
                        .where(Membership.organization_id == org.id)
                        .order_by(User.name, User.id)
                        .offset(depth - 1)
                        .limit(1)
                    )
                ).one()
                cursor = Cursor(sort="name", descending=False, value=name, id=user_id)
                cursors.append(cursor.encode())
    finally:
        await engine.dispose()
    return {
        "org_id": str(org.id),
        "auth0_org_id": org.auth0_org_id,
        "user_id": str(owner.id),
        "sub": owner.sub,
        "small_slug": small[0],
        "small_user_id": str(small[1]),
        "small_org_id": str(small[2]),
        "mid_cursor": cursors[0],
        "end_cursor": cursors[1],
    }


async def create_session(settings: Any, user_id: str, organization_id: str) -> str:
    """A signed-in session in the app's own Redis session store; returns the cookie value."""
    import msgspec

    from saas.login.sessions import (
        CREATED_AT,
        LAST_SEEN_AT,
        ORGANIZATION_ID,
        SESSION_STORE,
        USER_ID,
        create_stores,
    )

    store = create_stores(settings)[SESSION_STORE]
    session_id = secrets.token_hex(32)
    now = int(time.time())
    data = {USER_ID: user_id, ORGANIZATION_ID: organization_id, CREATED_AT: now, LAST_SEEN_AT: now}
    await store.set(session_id, msgspec.json.encode(data), expires_in=3600)
    with contextlib.suppress(Exception):
        await store._redis.aclose()  # type: ignore[attr-defined]
    return session_id


def sign_access_token(settings: Any, key_path: Path, sub: str, auth0_org_id: str) -> str:
    import jwt

    from saas.devidp.keys import KeyStore

    key = KeyStore(key_path).active
    now = int(time.time())
    claims = {
        "iss": settings.auth0_issuer,
        "sub": sub,
        "aud": [settings.auth0_audience, settings.auth0_issuer + "userinfo"],
        "iat": now,
        "exp": now + 3600,
        "azp": settings.auth0_client_id,
        "scope": "openid",
        "org_id": auth0_org_id,
        "permissions": OWNER_PERMISSIONS,
    }
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


# ---- statements per request, in-process ------------------------------------------------------


@contextlib.contextmanager
def counting_statements() -> Iterator[list[str]]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", listener)


def count_statements(
    env: dict[str, str], requests: dict[str, tuple[str, str, dict[str, str], str | None, int]]
) -> dict[str, dict[str, Any]]:
    """One request each through Litestar's TestClient against the same database and Redis."""
    from litestar.testing import TestClient

    from saas.app import create_app
    from saas.config import load_settings

    overrides = {"outbox_worker_enabled": False, "log_level": "WARNING"}  # no background queries
    with _environ(env):
        settings = load_settings(**overrides)
    app = create_app(settings)
    counts: dict[str, dict[str, Any]] = {}
    with (
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),
        TestClient(app, base_url=settings.app_base_url.replace("https://", "http://")) as client,
    ):
        for key, (method, path, headers, body, expected) in requests.items():
            kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
            if body is not None:
                kwargs["content"] = body
            client.request(method, path, **kwargs)  # warm caches (JWKS, discovery)
            with counting_statements() as seen:
                response = client.request(method, path, **kwargs)
            if response.status_code != expected:
                raise SystemExit(f"{key}: expected {expected}, got {response.status_code}")
            counts[key] = {
                "count": len(seen),
                "statements": [" ".join(s.split())[:160] for s in seen],
                # In full: bench/floor.py runs these same statements through raw asyncpg.
                "sql": list(seen),
            }
    return counts


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ---- JWT: raw verification vs the app's authentication -----------------------------------------


def _per_second(fn: Any, seconds: float = 2.0) -> float:
    n, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            fn()
        n += 50
    return n / elapsed


def jwt_costs(env: dict[str, str], token: str, small_token: str, org_slug: str) -> dict[str, Any]:
    import jwt
    from litestar.testing import RequestFactory

    from saas.config import load_settings
    from saas.db.config import create_sqlalchemy_config
    from saas.login.provider import OIDCProvider
    from saas.login.tokens import LEEWAY_SECONDS, REQUIRED_CLAIMS, verify_access_token
    from saas.tenancy.resolver import resolve_api_tenant

    with _environ(env):
        settings = load_settings(outbox_worker_enabled=False)

    async def measure() -> dict[str, Any]:
        provider = OIDCProvider(settings)
        jwks = await provider.jwks()
        kid = jwt.get_unverified_header(token)["kid"]
        key = await jwks.get_signing_key(kid)

        def raw() -> None:
            jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=settings.auth0_audience,
                issuer=settings.auth0_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )

        raw_per_s = _per_second(raw)

        async def app_verify_loop(seconds: float = 2.0) -> float:
            n, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                for _ in range(50):
                    await verify_access_token(
                        token, jwks, issuer=settings.auth0_issuer, audience=settings.auth0_audience
                    )
                n += 50
            return n / elapsed

        verify_per_s = await app_verify_loop()

        config = create_sqlalchemy_config(settings)
        request = RequestFactory().get(
            f"/api/v1/orgs/{org_slug}/members", headers={"authorization": f"Bearer {token}"}
        )
        timings: list[float] = []
        async with config.get_session() as db:
            for i in range(600):
                started = time.perf_counter()
                await resolve_api_tenant(org_slug, request, db, provider, settings)
                if i >= 100:
                    timings.append(time.perf_counter() - started)
                db.expunge_all()
        await config.get_engine().dispose()
        await provider.aclose()
        resolve_us = statistics.median(timings) * 1e6
        return {
            "raw_rs256_verify_per_s": raw_per_s,
            "raw_rs256_verify_us": 1e6 / raw_per_s,
            "app_verify_access_token_per_s": verify_per_s,
            "app_verify_access_token_us": 1e6 / verify_per_s,
            "resolve_api_tenant_us": resolve_us,
            "auth_overhead_vs_raw": (1e6 / verify_per_s) / (1e6 / raw_per_s),
            "resolve_vs_raw": resolve_us / (1e6 / raw_per_s),
        }

    return asyncio.run(measure())


# ---- report ----------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        "| scenario | req/s | vs baseline | vs floor | p50 ms | p95 ms | p99 ms | errors | SQL/req "
        "| RSS MiB/worker |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = []
    for r in results:
        ratio = f"{r.ratio * 100:.1f}%" if r.ratio is not None else "-"
        floor = f"{r.floor_ratio * 100:.1f}%" if r.floor_ratio is not None else "-"
        stmts = str(r.statements) if r.statements is not None else "-"
        rss = " / ".join(f"{size:.0f}" for size in r.rss_mib) if r.rss_mib else "-"
        rows.append(
            f"| {r.label} | {r.rps:,.0f} | {ratio} | {floor} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.errors} | {stmts} | {rss} |"
        )
    return "\n".join([head, *rows])


def _is_search(key: str) -> bool:
    return "search" in key


def verdicts(
    results: dict[str, Result],
    jwt_result: dict[str, Any],
    counts: dict[str, Any],
    fragment_keys: list[str],
    api_keys: list[str],
) -> list[tuple[str, bool, str]]:
    out: list[tuple[str, bool, str]] = []
    for key in [*fragment_keys, *api_keys]:
        r = results[key]
        ratio, floor_ratio = r.ratio or 0, r.floor_ratio or 0
        if _is_search(key):
            out.append(
                (
                    f"{r.label}: >= {TARGET_SEARCH_RATIO:.0%} of baseline and p99 < "
                    f"{TARGET_SEARCH_P99_MS:.0f} ms",
                    ratio >= TARGET_SEARCH_RATIO and r.p99_ms < TARGET_SEARCH_P99_MS,
                    f"{ratio:.1%} of baseline, p99 {r.p99_ms:.1f} ms",
                )
            )
        elif key in fragment_keys:
            out.append(
                (
                    f"{r.label}: >= {TARGET_FRAGMENT_FLOOR_RATIO:.0%} of the floor, "
                    f">= {TARGET_FRAGMENT_RATIO:.0%} of baseline and p99 < "
                    f"{TARGET_FRAGMENT_P99_MS:.0f} ms",
                    floor_ratio >= TARGET_FRAGMENT_FLOOR_RATIO
                    and ratio >= TARGET_FRAGMENT_RATIO
                    and r.p99_ms < TARGET_FRAGMENT_P99_MS,
                    f"{floor_ratio:.1%} of floor, {ratio:.1%} of baseline, p99 {r.p99_ms:.1f} ms",
                )
            )
        else:
            out.append(
                (
                    f"{r.label}: >= {TARGET_API_RATIO:.0%} of baseline",
                    ratio >= TARGET_API_RATIO,
                    f"{ratio:.1%}",
                )
            )
    if "login" in results:
        r = results["login"]
        out.append(
            (
                f"{r.label}: >= {TARGET_LOGIN_RATIO:.0%} of baseline",
                (r.ratio or 0) >= TARGET_LOGIN_RATIO,
                f"{(r.ratio or 0):.1%}",
            )
        )
    out.append(
        (
            f"token authentication within {TARGET_AUTH_VS_RAW}x raw RS256 verification",
            jwt_result["auth_overhead_vs_raw"] <= TARGET_AUTH_VS_RAW,
            f"{jwt_result['app_verify_access_token_us']:.0f} us vs {jwt_result['raw_rs256_verify_us']:.0f} us"
            f" = {jwt_result['auth_overhead_vs_raw']:.2f}x",
        )
    )
    out.append(
        (
            f"resolve_api_tenant within {TARGET_RESOLVE_VS_RAW:.0f}x raw RS256 verification",
            jwt_result["resolve_vs_raw"] <= TARGET_RESOLVE_VS_RAW,
            f"{jwt_result['resolve_api_tenant_us']:.0f} us = {jwt_result['resolve_vs_raw']:.1f}x",
        )
    )
    measured = [r for r in results.values() if r.rss_mib]
    if len(measured) >= 2:
        first, last = max(measured[0].rss_mib or [0]), max(measured[-1].rss_mib or [0])
        out.append(
            (
                f"app workers' resident size grows <= {TARGET_RSS_GROWTH:.0%} from the first app "
                "scenario to the last",
                last <= first * (1 + TARGET_RSS_GROWTH),
                f"largest worker {first:.0f} MiB -> {last:.0f} MiB ({last / first - 1:+.1%})",
            )
        )
    frag = {k: v["count"] for k, v in counts.items() if k.startswith("fragment")}
    out.append(
        (
            f"fragment SQL statements per request <= {TARGET_FRAGMENT_STATEMENTS} and constant",
            bool(frag)
            and max(frag.values()) <= TARGET_FRAGMENT_STATEMENTS
            and _constant_by_kind(frag),
            ", ".join(f"{k}={v}" for k, v in frag.items()),
        )
    )
    api = {k: v["count"] for k, v in counts.items() if k.startswith("api")}
    out.append(
        (
            "API SQL statements per request constant",
            bool(api) and _constant_by_kind(api),
            ", ".join(f"{k}={v}" for k, v in api.items()),
        )
    )
    return out


def _constant_by_kind(counts: dict[str, int]) -> bool:
    """Constant means: the same at every page depth and organization size. A search counts
    its matches (one statement more than browsing), so searches are compared among themselves."""
    kinds = [
        {v for k, v in counts.items() if ("search" in k) == searching}
        for searching in (False, True)
    ]
    return all(len(kind) <= 1 for kind in kinds)


# ---- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the app under wrk (make bench).")
    parser.add_argument("--database-url", default=BENCH_DB_URL)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per scenario")
    parser.add_argument("--members", type=int, default=datagen.Sizes.big_members)
    parser.add_argument("--keep-db", action="store_true", help="leave saas_bench in place")
    parser.add_argument("--only", default="", help="comma-separated scenario keys")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the app's workers with py-spy during each app scenario (bench/profile.py)",
    )
    args = parser.parse_args()

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    if not args.database_url.startswith(("postgresql://", "postgres://")):
        raise SystemExit("the HTTP benchmark runs on PostgreSQL (datagen also fills SQLite)")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix="saas-bench-"))
    procs = Processes(work)
    redis_db_url = args.redis_url
    machine = machine_info()
    started_at = time.time()
    try:
        log(f"machine: {machine['nproc']} CPUs, {machine['cpu']}, {machine['memory_gib']} GiB")
        t0 = time.perf_counter()
        counts_made = asyncio.run(
            datagen.generate(args.database_url, datagen.Sizes(big_members=args.members))
        )
        log(
            f"data: {counts_made['organizations']:,} orgs, {counts_made['memberships']:,} memberships, "
            f"{counts_made['invitations']:,} invitations, {counts_made['audit_events']:,} audit events "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        idp_port, app_port, base_port = free_port(), free_port(), free_port()
        floor_port = free_port()
        idp_url = f"http://127.0.0.1:{idp_port}"
        app_url = f"http://127.0.0.1:{app_port}"
        base_url = f"http://127.0.0.1:{base_port}"
        floor_url = f"http://127.0.0.1:{floor_port}"
        key_path = work / "devidp-keys.json"
        client_secret = secrets.token_urlsafe(32)
        common = {
            k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "DEVIDP_", "APP_"))
        }
        common.update({"PYTHONUNBUFFERED": "1", "AUTH0_CLIENT_SECRET": client_secret})
        idp_env = {
            **common,
            "APP_ENV": "development",
            "APP_BASE_URL": f"https://127.0.0.1:{app_port}",
            "DEVIDP_BASE_URL": idp_url,
            "DEVIDP_DATABASE_URL": f"sqlite:///{work / 'devidp.db'}",
            "DEVIDP_KEY_PATH": str(key_path),
            "DATABASE_URL": f"sqlite:///{work / 'unused.db'}",
            "AUTH0_MANAGEMENT_CLIENT_SECRET": secrets.token_urlsafe(32),
        }
        app_env = {
            **common,
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "AUTH0_MANAGEMENT_CLIENT_SECRET": secrets.token_urlsafe(32),
            "APP_BASE_URL": f"https://127.0.0.1:{app_port}",
            "AUTH0_DOMAIN": idp_url,
            "DATABASE_URL": datagen.sync_url(args.database_url),
            "REDIS_URL": redis_db_url,
            "STATE_DIR": str(work / "state"),
            # Production allows 30 sign-ins per minute per address; wrk is one address.
            "LOGIN_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        idp = procs.start("devidp", [sys.executable, "-m", "saas.cli", "devidp", "serve"], idp_env)
        wait_http(idp_url + "/.well-known/openid-configuration", idp, "devidp", work)
        app = procs.start("app", [*uvicorn, "--port", str(app_port), "saas.asgi:app"], app_env)
        base = procs.start(
            "baseline", [*uvicorn, "--port", str(base_port), "bench.baseline:app"], common
        )
        wait_http(app_url + "/login", app, "app", work)
        wait_http(base_url + "/", base, "baseline", work)
        log(
            f"app (APP_ENV=production, {args.workers} uvicorn workers) on {app_url}, configured "
            f"as APP_BASE_URL=https://127.0.0.1:{app_port} (TLS belongs to the proxy in front); "
            f"dev IdP as AUTH0_DOMAIN={idp_url}; baseline on {base_url}"
        )

        from saas.config import load_settings
        from saas.login.sessions import session_cookie_name
        from saas.web.security import create_csrf_config

        with _environ(app_env):
            settings = load_settings()
        mid = args.members // 2  # as far from both ends as it gets
        end = args.members - 25
        ident = asyncio.run(bench_identity(args.database_url, (mid, end)))
        session_id = asyncio.run(create_session(settings, ident["user_id"], ident["org_id"]))
        small_session = asyncio.run(
            create_session(settings, ident["small_user_id"], ident["small_org_id"])
        )
        token = sign_access_token(settings, key_path, ident["sub"], ident["auth0_org_id"])
        cookie_name = session_cookie_name(settings)
        csrf_name = create_csrf_config(settings).cookie_name
        login_page = httpx.get(app_url + "/login", timeout=10)
        csrf = login_page.cookies.get(csrf_name)
        if csrf is None:
            found = re.search(
                rf"{re.escape(csrf_name)}=([^;]+)", login_page.headers.get("set-cookie", "")
            )
            if found is None:
                raise SystemExit(f"/login set no {csrf_name} cookie")
            csrf = found[1]

        big = datagen.BIG_SLUG
        after_mid = f"after={ident['mid_cursor']}"
        after_end = f"after={ident['end_cursor']}"
        fragment_headers = {"Cookie": f"{cookie_name}={session_id}", "HX-Request": "true"}
        small_headers = {"Cookie": f"{cookie_name}={small_session}", "HX-Request": "true"}

        # The floor runs the app's own statements for the fragment, taken from the app now.
        captured = count_statements(
            app_env,
            {
                "page_1": ("GET", f"/o/{big}/members", fragment_headers, None, 200),
                "page_after": ("GET", f"/o/{big}/members?{after_mid}", fragment_headers, None, 200),
            },
        )
        statements_file = work / "floor_statements.json"
        statements_file.write_text(json.dumps({k: v["sql"] for k, v in captured.items()}))
        floor = procs.start(
            "floor",
            [*uvicorn, "--port", str(floor_port), "bench.floor:app"],
            {**app_env, "BENCH_FLOOR_STATEMENTS": str(statements_file)},
        )
        wait_http(floor_url + "/", floor, "floor", work)
        api_headers = {"Authorization": f"Bearer {token}"}
        login_headers = {
            "Cookie": f"{csrf_name}={csrf}",
            "x-csrftoken": csrf,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        login_body = f"email=someone%40{datagen.BIG_DOMAIN}"

        # Is the members page there yet (it is being built)? Fall back to the API list if not.
        probe = httpx.get(f"{app_url}/o/{big}/members", headers=fragment_headers, timeout=10)
        have_fragment = probe.status_code == 200 and "<html" not in probe.text[:500].lower()
        if not have_fragment:
            log(f"members fragment unavailable (HTTP {probe.status_code}): API list only")

        scenarios: list[Scenario] = [
            Scenario("baseline", "baseline: bare Litestar handler", base_url + "/")
        ]
        # The floor of the fragment's pages it can serve (bench/floor.py): page 1 and a cursor.
        floors = {
            "fragment_p1": ("floor_p1", "floor: members fragment's work, page 1", ""),
            "fragment_mid": (
                "floor_mid",
                f"floor: members fragment's work, after member {mid:,}",
                f"?{after_mid}",
            ),
        }
        if have_fragment:
            for floor_key, label, query in floors.values():
                scenarios.append(
                    Scenario(
                        floor_key,
                        label,
                        f"{floor_url}/o/{big}/members{query}",
                        headers=fragment_headers,
                        statements=3,
                    )
                )
        in_process: dict[str, tuple[str, str, dict[str, str], str | None, int]] = {}
        if have_fragment:
            for key, label, query in (
                ("fragment_p1", "members fragment, page 1 (100k org)", ""),
                (
                    "fragment_mid",
                    f"members fragment, after member {mid:,} (100k org)",
                    f"?{after_mid}",
                ),
                ("fragment_deep", "members fragment, last page (100k org)", "?at=last"),
                (
                    "fragment_search",
                    f"members fragment, search '{SEARCH_TERM}' (100k org)",
                    f"?q={SEARCH_TERM}",
                ),
                (
                    "fragment_search_name",
                    f"members fragment, search '{SEARCH_NAME}' (100k org)",
                    f"?q={SEARCH_NAME.replace(' ', '+')}",
                ),
                (
                    "fragment_search_short",
                    f"members fragment, search '{SEARCH_SHORT}' (100k org)",
                    f"?q={SEARCH_SHORT}",
                ),
            ):
                path = f"/o/{big}/members{query}"
                scenarios.append(Scenario(key, label, app_url + path, headers=fragment_headers))
                in_process[key] = ("GET", path, fragment_headers, None, 200)
            in_process["fragment_small_org"] = (
                "GET",
                f"/o/{ident['small_slug']}/members",
                small_headers,
                None,
                200,
            )
        for key, label, query in (
            ("api_p1", "API members, page 1 (100k org)", "?limit=25"),
            (
                "api_mid",
                f"API members, after member {mid:,} (100k org)",
                f"?limit=25&{after_mid}",
            ),
            (
                "api_deep",
                f"API members, after member {end:,} (100k org)",
                f"?limit=25&{after_end}",
            ),
            (
                "api_search",
                f"API members, q={SEARCH_TERM} (100k org)",
                f"?limit=25&q={SEARCH_TERM}",
            ),
        ):
            path = f"/api/v1/orgs/{big}/members{query}"
            scenarios.append(Scenario(key, label, app_url + path, headers=api_headers))
            in_process[key] = ("GET", path, api_headers, None, 200)
        scenarios.append(
            Scenario(
                "login",
                "POST /login email router (303)",
                app_url + "/login",
                method="POST",
                headers=login_headers,
                body=login_body,
                expected=303,
            )
        )
        in_process["login"] = ("POST", "/login", login_headers, login_body, 303)
        if args.only:
            wanted = {"baseline", *args.only.split(",")}
            wanted |= {floors[k][0] for k in wanted if k in floors}
            scenarios = [s for s in scenarios if s.key in wanted]
        if have_fragment:
            for app_key, (_floor_key, _label, query) in floors.items():
                same_answer(
                    f"{app_url}/o/{big}/members{query}",
                    f"{floor_url}/o/{big}/members{query}",
                    fragment_headers,
                    app_key,
                )

        # Every scenario must answer what we expect before wrk hammers it.
        for s in scenarios:
            answer = httpx.request(s.method, s.url, headers=s.headers, content=s.body, timeout=30)
            if answer.status_code != s.expected:
                raise SystemExit(
                    f"{s.key}: expected HTTP {s.expected}, got {answer.status_code}: "
                    f"{answer.text[:300]}"
                )

        log("counting SQL statements per request (in-process, TestClient, same database)")
        counts = count_statements(app_env, in_process)
        for s in scenarios:
            if s.key in counts:
                s.statements = counts[s.key]["count"]

        log("timing RS256 verification and API authentication in-process")
        jwt_result = jwt_costs(app_env, token, token, big)

        # The in-process app configured logging for itself: its httpx lines (one per health
        # check between scenarios) are not the report's.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        results: list[Result] = []
        profiles: dict[str, list[tuple[str, float]]] = {}
        if args.profile:
            shutil.rmtree(PROFILES_DIR, ignore_errors=True)
            PROFILES_DIR.mkdir(parents=True)
        for s in scenarios:
            settle(args.database_url, app_url)
            log(f"wrk: {s.label}")
            is_app = s.key.startswith(("fragment", "api", "login"))
            spies: list[tuple[subprocess.Popen[bytes], Path]] = []
            if args.profile and is_app:
                for pid in worker_pids(app.pid):
                    raw = PROFILES_DIR / f"{s.key}.{pid}.raw"
                    spies.append((profile.start(pid, args.warmup + args.duration, raw), raw))
            result = run_wrk(
                s,
                work,
                connections=args.connections,
                threads=args.threads,
                duration=args.duration,
                warmup=args.warmup,
            )
            if is_app:
                result.rss_mib = worker_rss_mib(app.pid)
            for spy, _ in spies:
                spy.wait(timeout=60)
            if spies:
                profiles[s.label] = profile.summarize([raw for _, raw in spies])
            results.append(result)
        baseline_rps = results[0].rps
        floor_rps = {r.key: r.rps for r in results if r.key.startswith("floor")}
        for r in results:
            r.ratio = r.rps / baseline_rps
            # Each fragment page against the floor of the same page; the others (last page,
            # searches) against page 1's floor, the cheapest the fragment's work gets.
            floor_key = floors.get(r.key, ("floor_p1",))[0]
            if r.key.startswith(("fragment", "api", "login")) and floor_key in floor_rps:
                r.floor_ratio = r.rps / floor_rps[floor_key]
        by_key = {r.key: r for r in results}
        fragment_keys = [k for k in by_key if k.startswith("fragment")]
        api_keys = [k for k in by_key if k.startswith("api")]
        checks = verdicts(by_key, jwt_result, counts, fragment_keys, api_keys)

        report = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
            "machine": machine,
            "config": {
                "server": f"uvicorn, {args.workers} workers, uvloop/httptools if installed, no access log",
                "app_env": "production",
                "app_base_url": f"https://127.0.0.1:{app_port} (served as plain http on loopback)",
                "database": "PostgreSQL saas_bench",
                "sessions": "Redis",
                "load": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s (+{args.warmup}s warm-up)",
                "members_in_big_org": args.members,
                "members_fragment": have_fragment,
            },
            "results": [asdict(r) for r in results],
            "jwt": jwt_result,
            "statements": counts,
            "targets": [{"target": t, "met": ok, "value": v} for t, ok, v in checks],
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "latest.json").write_text(json.dumps(report, indent=2, default=str))

        print()
        print(
            f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB RAM, "
            f"Python {machine['python']}"
        )
        print(
            f"Server: uvicorn --workers {args.workers}, APP_ENV=production, PostgreSQL, Redis sessions; "
            f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration}s on the same machine"
        )
        print(
            "APP_BASE_URL is https://127.0.0.1:<port> (production requires https) while uvicorn "
            "serves plain http on loopback; in production TLS ends at the proxy in front."
        )
        if not have_fragment:
            print(
                "The members HTML fragment was not available: API members list benchmarked instead."
            )
        print()
        print(table(results))
        print()
        print(AUTH0_LIMITS)
        print()
        print(
            f"JWT: raw PyJWT RS256 verify {jwt_result['raw_rs256_verify_per_s']:,.0f}/s "
            f"({jwt_result['raw_rs256_verify_us']:.0f} us) per core; the app's verify_access_token "
            f"{jwt_result['app_verify_access_token_us']:.0f} us "
            f"({jwt_result['auth_overhead_vs_raw']:.2f}x raw); resolve_api_tenant (token + org, user, "
            f"membership lookups) {jwt_result['resolve_api_tenant_us']:.0f} us "
            f"({jwt_result['resolve_vs_raw']:.1f}x raw)"
        )
        print()
        for target, ok, value in checks:
            print(f"  [{'met ' if ok else 'MISS'}] {target}: {value}")
        for label, shares in profiles.items():
            print()
            print(profile.report(label, shares))
        print(f"\nwritten to {RESULTS_DIR / 'latest.json'}")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        raise SystemExit(130) from None
    finally:
        procs.stop_all()
        logs = RESULTS_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for server_log in work.glob("*.log"):
            shutil.copy(server_log, logs / server_log.name)
        with contextlib.suppress(Exception):
            _clean_redis(redis_db_url)
        if not args.keep_db:
            with contextlib.suppress(Exception):
                asyncio.run(datagen.drop_postgres(args.database_url))
        shutil.rmtree(work, ignore_errors=True)


CSRF_VALUE = re.compile(r'(name="_csrf_token" value=")[^"]*"')


def same_answer(app_url: str, floor_url: str, headers: dict[str, str], key: str) -> None:
    """The floor must answer what the app answers: the same status and the same body, CSRF
    tokens aside (each answer makes its own), or it is not the same work."""
    app_answer = httpx.get(app_url, headers=headers, timeout=30)
    floor_answer = httpx.get(floor_url, headers=headers, timeout=30)
    app_body = CSRF_VALUE.sub(r'\1"', app_answer.text)
    floor_body = CSRF_VALUE.sub(r'\1"', floor_answer.text)
    if (app_answer.status_code, app_body) != (floor_answer.status_code, floor_body):
        import difflib

        diff = "\n".join(
            list(difflib.unified_diff(app_body.splitlines(), floor_body.splitlines(), lineterm=""))[
                :40
            ]
        )
        raise SystemExit(
            f"{key}: the floor does not answer what the app does "
            f"({app_answer.status_code} vs {floor_answer.status_code}):\n{diff}"
        )
    missing = {
        k for k in app_answer.headers if k not in floor_answer.headers and k != "x-request-id"
    }
    if missing:
        log(f"{key}: headers the app sends and the floor does not: {sorted(missing)}")


def _clean_redis(url: str) -> None:
    """Drop the sessions and rate-limit entries this run wrote (the app's `saas*` keys only)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match="saas*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


if __name__ == "__main__":
    main()
