"""A directory's first full push: N people created over SCIM, then one group holding all of
them, as Okta and Entra ID do it (one POST per person, group members added in batches).

    uv run python -m bench.scim_push --users 10000 [--concurrency 4] [--database-url URL]

The app runs under uvicorn in a process of its own (SQLite in a temporary directory, or the
PostgreSQL database given, which must be empty), migrated and seeded as `make run` does, with
the outbox worker off (nothing here needs Auth0). Printed: throughput, latency percentiles, the
slowest request, errors, and the server's resident memory as the push goes, which must stay
flat: nothing of a request outlives it. Exits non-zero on any error or a request over 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from saas.config import PROJECT_ROOT, load_settings
from saas.db.config import create_sqlalchemy_config, standalone_session
from saas.db.models import Organization
from saas.demo.seed import seed_demo_data
from saas.scim.tokens import DirectorySettingsService
from saas.tenancy.caller import Caller

TIMEOUT = 30.0
GROUP_BATCH = 100


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _prepare(env: dict[str, str]) -> str:
    from advanced_alchemy.alembic.commands import AlembicCommands

    settings = load_settings(**{k.lower(): v for k, v in env.items() if k != "SECRET_KEY"})
    await asyncio.to_thread(AlembicCommands(create_sqlalchemy_config(settings)).upgrade, "head")
    async with standalone_session(settings) as session:
        await seed_demo_data(session)
        org = (
            await session.execute(select(Organization).where(Organization.slug == "acme"))
        ).scalar_one()
        issued = await DirectorySettingsService(session, Caller.system(org)).create_token("bench")
        await session.commit()
        return issued.secret


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _push(base: str, token: str, users: int, concurrency: int, pid: int) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    latencies: list[float] = []
    errors: list[str] = []
    memory: list[tuple[int, int]] = [(0, _rss_kib(pid))]
    ids: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(users):
        queue.put_nowait(n)

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=TIMEOUT) as client:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                email = f"person{n:05d}@bench-directory.example"
                body = {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": email,
                    "externalId": f"ext-{n}",
                    "name": {"givenName": "Person", "familyName": f"{n:05d}"},
                    "emails": [{"value": email, "primary": True, "type": "work"}],
                    "active": True,
                }
                started = time.perf_counter()
                try:
                    answer = await client.post("/Users", json=body)
                except httpx.HTTPError as error:
                    errors.append(f"POST {n}: {type(error).__name__}")
                    continue
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 201:
                    errors.append(f"POST {n}: {answer.status_code} {answer.text[:120]}")
                else:
                    ids.append(answer.json()["id"])
                if len(latencies) % 1000 == 0:
                    memory.append((len(latencies), _rss_kib(pid)))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        created_in = time.perf_counter() - began
        group = await client.post(
            "/Groups",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "All"},
        )
        group_id = group.json()["id"]
        group_latencies: list[float] = []
        began = time.perf_counter()
        for start in range(0, len(ids), GROUP_BATCH):
            batch = [{"value": i} for i in ids[start : start + GROUP_BATCH]]
            started = time.perf_counter()
            answer = await client.patch(
                f"/Groups/{group_id}",
                params={"excludedAttributes": "members"},
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": batch}],
                },
            )
            group_latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                errors.append(f"PATCH group {start}: {answer.status_code} {answer.text[:120]}")
        grouped_in = time.perf_counter() - began
        listed = await client.get("/Users", params={"count": "200", "startIndex": str(users - 50)})
        memory.append((users, _rss_kib(pid)))

    print(
        f"users created: {len(ids)} of {users} in {created_in:.1f} s "
        f"({len(ids) / created_in:.0f}/s, concurrency {concurrency})"
    )
    print(
        f"POST /Users  p50 {_percentile(latencies, 0.5):.1f} ms  p95 "
        f"{_percentile(latencies, 0.95):.1f} ms  p99 {_percentile(latencies, 0.99):.1f} ms  "
        f"max {max(latencies) * 1000:.1f} ms"
    )
    print(
        f"group of all: {len(group_latencies)} PATCHes of {GROUP_BATCH} in {grouped_in:.1f} s, "
        f"p50 {statistics.median(group_latencies) * 1000:.1f} ms, "
        f"max {max(group_latencies) * 1000:.1f} ms"
    )
    print(f"last page: {listed.status_code}, totalResults {listed.json().get('totalResults')}")
    print(
        "server RSS (MiB) by users pushed: "
        + ", ".join(f"{n}: {kib / 1024:.0f}" for n, kib in memory)
    )
    for error in errors[:10]:
        print("error:", error)
    slow = max(latencies + group_latencies) >= TIMEOUT
    return 1 if errors or slow else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {
            "APP_ENV": "development",
            "DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db",
            "APP_BASE_URL": f"http://127.0.0.1:{port}",
            "STATE_DIR": f"{tmp}/state",
            "OUTBOX_WORKER_ENABLED": "false",
            "SCIM_RATE_LIMIT_PER_MINUTE": "10000000",
            **(
                {"REDIS_URL": os.environ["BENCH_REDIS_URL"]}
                if "BENCH_REDIS_URL" in os.environ
                else {}
            ),
        }
        token = asyncio.run(_prepare(env))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "saas.asgi:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
        )
        try:
            base = f"http://127.0.0.1:{port}/scim/v2"
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            return asyncio.run(_push(base, token, args.users, args.concurrency, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    raise SystemExit(main())
