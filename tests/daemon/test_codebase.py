"""The repository passes its own linters: ruff (lint and format) and import-linter's
layering contracts from pyproject.toml. Each tool runs as a subprocess from the repo root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(argv[0])
    if exe is None:
        # The linters are test dependencies: a missing one is a broken install, and a
        # skipped contract check would let a broken layer land unnoticed.
        pytest.fail(f"{argv[0]} is not installed (pip install -e '.[test]')")
    return subprocess.run(
        [exe, *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def test_ruff_check() -> None:
    result = run_tool("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, report(result)


def test_ruff_format() -> None:
    result = run_tool("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, report(result)


def test_import_contracts() -> None:
    result = run_tool("lint-imports", "--no-cache", "--no-logo")
    assert result.returncode == 0, report(result)
    # Every contract in pyproject.toml was checked, and none is broken.
    assert "0 broken" in result.stdout, report(result)
