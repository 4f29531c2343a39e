"""Build the wheel (and the sdist) from a copy of the source tree and install it in a fresh venv
(tests/test_wheel.py, tests/test_ci_recipes.py).

The copy keeps build/ and egg-info out of the checkout; pip's cache makes the
dependencies' downloads from PyPI a one-time cost. A wheel is built once per
content of the source tree and shared (under a lock) by every test and xdist
worker that asks for it. Commands run with a clean
environment: no PYTHONPATH pointing into the checkout, no suites override.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from conftest import missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache",
    ".hypothesis", "reports", "fuzz-findings", "*.img",
)
NO_INDEX = "Could not find a version that satisfies"


def clean_env(extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AOECONFORM_SUITES", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra or {})
    return env


def run(argv: Sequence[str], cwd, timeout: float = 600, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


def ok(done: subprocess.CompletedProcess, what: str) -> str:
    assert done.returncode == 0, f"{what} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _source_digest() -> str:
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(ROOT):
        ignored = NOT_SOURCE(directory, subdirs + files)
        subdirs[:] = sorted(d for d in subdirs if d not in ignored)
        for name in sorted(f for f in files if f not in ignored):
            path = os.path.join(directory, name)
            digest.update(os.path.relpath(path, ROOT).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def build_wheel() -> tuple[str, str]:
    """The wheel's path, and pip's verbose output from building it."""
    cache = Path(tempfile.gettempdir()) / "aoeconform-test-wheels" / _source_digest()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log = cache / "build.log"
        built = list(cache.glob("aoeconform-*.whl"))
        if not built or not log.is_file():
            with tempfile.TemporaryDirectory(prefix="aoeconform-wheel-") as work:
                source = Path(work) / "src"
                shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
                done = run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(cache), str(source)], work)
            if done.returncode != 0 and NO_INDEX in done.stdout + done.stderr:
                missing("pip cannot reach PyPI for the build requirements")
            log.write_text(ok(done, "pip wheel") + done.stderr)
            built = list(cache.glob("aoeconform-*.whl"))
        (wheel,) = built
        return str(wheel), log.read_text()


def build_sdist() -> str:
    """The sdist's path, built by setuptools' own PEP 517 hook in a venv that has
    the build requirement of pyproject.toml (the shared venv's setuptools may be older)."""
    cache = Path(tempfile.gettempdir()) / "aoeconform-test-wheels" / _source_digest()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = list(cache.glob("aoeconform-*.tar.gz"))
        if not built:
            with tempfile.TemporaryDirectory(prefix="aoeconform-sdist-") as work:
                source, venv = Path(work) / "src", Path(work) / "venv"
                shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
                ok(run([sys.executable, "-m", "venv", str(venv)], work), "python -m venv")
                python = str(venv / "bin" / "python")
                pip_install(python, "setuptools>=77", work)
                hook = f"from setuptools import build_meta; print(build_meta.build_sdist({str(cache)!r}))"
                ok(run([python, "-c", hook], source), "build_meta.build_sdist")
            built = list(cache.glob("aoeconform-*.tar.gz"))
        (sdist,) = built
        return str(sdist)


def pip_install(python: str, requirement: str, cwd) -> None:
    done = run([python, "-m", "pip", "install", "-q", requirement], cwd)
    if done.returncode != 0 and NO_INDEX in done.stdout + done.stderr:
        missing("pip cannot reach PyPI for the wheel's dependencies")
    ok(done, f"pip install {requirement}")
