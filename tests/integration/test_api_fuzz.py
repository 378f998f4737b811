"""Schemathesis against the app's own OpenAPI document, over a real socket, with a real owner
token: whatever it generates -- positive and negative cases, boundary values, NUL bytes,
huge integers, stateful sequences -- the API answers with a 4xx, never a 5xx.

It runs the `st` command line (the supported interface of schemathesis 4) in a subprocess, so
the generator and the app do not share one interpreter's lock, and it reads the requests it
made from the HAR report. The run is bounded (examples per operation, stateful steps) and
seeded so that a failure reproduces. Its stateful phase removes members and revokes
invitations: it writes to the stack's database, which is reset to its seeded state before
the next test, so no other test sees what it did.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack
from tests.support.tokens import access_token_for

ACME = "org_AcmeDemo00000001"
SEED = 20261201
# Sized for a 2-core CI machine: about half a minute per backend. 60 examples per operation
# took twice as long.
MAX_EXAMPLES = 30
STATEFUL_STEPS = 10
RUN_TIMEOUT_SECONDS = 170

CONFIG = """\
seed = {seed}
workers = 1
request-timeout = 20
# Count every 5xx, not only the first of each operation.
continue-on-failure = true

[cache]
enabled = false

[generation]
max-examples = {max_examples}
no-shrink = true
database = "none"

[phases.stateful]
max-steps = {stateful_steps}

# Every operation addresses the organization the token was issued for; other values of
# {{org}} only ever reach the tenant check, which the route tests cover.
[parameters]
"path.org" = "acme"

# Role changes and removals act on two fixed members, never on the token's owner: once the
# run had made someone else an owner and then demoted Alice, every later request was a 403.
[[operations]]
include-name = "PATCH /api/v1/orgs/{{org}}/members/{{member_id}}"
parameters = {{ "path.member_id" = "{bob}" }}

[[operations]]
include-name = "DELETE /api/v1/orgs/{{org}}/members/{{member_id}}"
parameters = {{ "path.member_id" = "{vera}" }}
"""


pytestmark = [pytest.mark.stack(outbox_poll_seconds=0.5), pytest.mark.long_module]


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)
def test_schemathesis_finds_no_server_errors(stack: Stack, tmp_path: Path) -> None:
    browser = stack.browser()
    browser.login("alice@acme.example")
    token = access_token_for(browser, ACME)
    config = tmp_path / "schemathesis.toml"
    members = httpx.get(
        stack.app_url + "/api/v1/orgs/acme/members",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["items"]
    ids = {m["email"].partition("@")[0]: m["id"] for m in members}
    config.write_text(
        CONFIG.format(
            seed=SEED,
            max_examples=MAX_EXAMPLES,
            stateful_steps=STATEFUL_STEPS,
            bob=ids["bob"],
            vera=ids["vera"],
        )
    )
    har = tmp_path / "schemathesis.har"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            stack.app_url + "/api/docs/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {token}",
            "--report",
            "har",
            "--report-har-path",
            str(har),
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses = Counter(int(entry["response"]["status"]) for entry in entries)
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    summary = (
        f"schemathesis: {len(entries)} requests in {elapsed:.0f} s, {server_errors} answered 5xx; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    print(summary)
    assert entries, result.stdout + result.stderr
    assert server_errors == 0, summary + "\n" + result.stdout[-6000:]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
