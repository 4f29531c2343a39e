"""Shared fixtures: root checks, throw-away labs, and vblade running in one.

Tests that need root (raw sockets, network namespaces) or an external tool
are skipped with one line on a developer machine that lacks it, and fail
with one line under CI (CI=true), where a skip would hide a broken setup.

Lab names carry this process's PID, so parallel xdist workers (one process
each) and other test sessions on the same machine never share or remove
each other's namespaces and interfaces.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

from aoeconform.errors import PermissionDenied
from aoeconform.lab import Lab
from aoeconform.lab.testbed import (  # noqa: F401  (tests import these from here)
    RANDOM_BYTES,
    SECTOR,
    VBLADE_IMAGE_SIZE as IMAGE_SIZE,
    VBLADE_SHELF,
    VBLADE_SLOT,
    VbladeLab,
    root_problem,
    unique_lab_name,
    vblade_lab as _vblade_lab_context,
)


# skip, or fail under CI=true, with one line: the same rule the plugin applies to its fixtures
from aoeconform.pytest_plugin import in_ci, missing, need_root  # noqa: E402,F401


def need_program(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        missing(f"needs {program} (apt-get install {package})")
    return path


def need_uml() -> None:
    """Skip (fail under CI) where the user-mode Linux guest cannot start."""
    need_root()
    from aoeconform.lab.uml import uml_problem

    problem = uml_problem()
    if problem:
        missing(problem)


@pytest.fixture
def require_root() -> None:
    need_root()


def _up_or_skip(lab: Lab) -> Lab:
    # root, yet no namespaces (a restricted container): same rule as no root
    try:
        return lab.up()
    except PermissionDenied as exc:
        missing(str(exc))


@pytest.fixture
def make_lab(require_root):
    """Factory for labs that are always removed after the test: make_lab(mtu=1500)."""
    labs = []

    def factory(mtu: int = 1500, up: bool = True) -> Lab:
        lab = Lab(unique_lab_name(), mtu=mtu)
        labs.append(lab)
        return _up_or_skip(lab) if up else lab

    yield factory
    for lab in labs:
        lab.down()


def _vblade_lab(tmp_path_factory, mtu: int, shelf: int, slot: int, extra_args=()) -> Iterator[VbladeLab]:
    need_root()
    need_program("vblade", "vblade")
    with _vblade_lab_context(tmp_path_factory.mktemp("vblade"), mtu, shelf, slot, extra_args, up=_up_or_skip) as vb:
        yield vb


@pytest.fixture(scope="module")
def vblade_lab(request, tmp_path_factory) -> Iterator[VbladeLab]:
    """vblade as shelf 1 slot 2 at MTU 1500. Parametrize indirectly with a
    dict of mtu/shelf/slot/extra_args to change any of them."""
    params = getattr(request, "param", None) or {}
    yield from _vblade_lab(
        tmp_path_factory,
        params.get("mtu", 1500),
        params.get("shelf", VBLADE_SHELF),
        params.get("slot", VBLADE_SLOT),
        params.get("extra_args", ()),
    )


@pytest.fixture(scope="module")
def vblade_lab_jumbo(tmp_path_factory) -> Iterator[VbladeLab]:
    """vblade as shelf 1 slot 2 at MTU 9000 (jumbo frames)."""
    yield from _vblade_lab(tmp_path_factory, 9000, VBLADE_SHELF, VBLADE_SLOT)


@pytest.fixture
def vblade_transport(vblade_lab):
    """A raw transport on the host end of ``vblade_lab``, closed after the test."""
    with vblade_lab.transport() as transport:
        yield transport


@pytest.fixture(scope="session", autouse=True)
def every_sarif_file_is_valid(tmp_path_factory):
    """After the session: every report.sarif any test wrote under the temporary
    directories (in process or from a subprocess) validates against the
    published SARIF 2.1.0 schema, with relative locations (tests/sarif_check.py)."""
    yield
    from sarif_check import check_sarif_tree

    check_sarif_tree(tmp_path_factory.getbasetemp())
