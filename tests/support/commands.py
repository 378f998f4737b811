"""The project's commands run as a user runs them: a separate process of this interpreter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping


def run_python(
    *args: str, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python *args` with exactly `env`; its output as text, whatever its exit status."""
    return subprocess.run(  # this interpreter, arguments from the tests
        [sys.executable, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_saas(
    *args: str, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The `saas` command (`python -m saas.cli`, as the installed script runs it)."""
    return run_python("-m", "saas.cli", *args, env=env, timeout=timeout)
