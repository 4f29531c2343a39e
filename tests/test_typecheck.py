"""mypy is clean on the package, with the configuration in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_is_clean_on_the_package():
    try:
        import mypy  # noqa: F401
    except ImportError:
        # a failure, not a skip: the test extra has mypy, so a venv without it is
        # stale, and a skip here has let type errors land before
        pytest.fail("mypy is not installed: pip install -e '.[test]'", pytrace=False)
    # a subprocess, so the check sees the checkout's files and config, and a
    # cache beside them makes reruns take a second or two
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml"),
         "--cache-dir", os.path.join(ROOT, ".mypy_cache"), os.path.join(ROOT, "aoeconform")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert done.returncode == 0 and not errors, f"mypy found {len(errors)} errors:\n{done.stdout}{done.stderr}"
