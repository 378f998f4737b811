"""The layering contracts in pyproject.toml ([tool.importlinter]) hold: the database layer
imports nothing above it, services never import controllers or the web layer, and no feature's
controllers import another's. import-linter reads the real import graph of `saas`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_graph_keeps_every_layering_contract() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Contracts: 4 kept, 0 broken." in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
