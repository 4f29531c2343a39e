"""Shared fixtures: root checks, throw-away labs, and vblade running in one.

Tests that need root (raw sockets, network namespaces) or an external tool
are skipped with one line on a developer machine that lacks it, and fail
with one line under CI (CI=true), where a skip would hide a broken setup.

Lab names carry this process's PID, so parallel xdist workers (one process
each) and other test sessions on the same machine never share or remove
each other's namespaces and interfaces.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Iterator, Optional

import pytest

from aoeconform.errors import PermissionDenied
from aoeconform.lab import Lab, TargetProcess, make_sparse_image

SECTOR = 512
IMAGE_SIZE = 64 * 1024 * 1024
#: the image's first RANDOM_BYTES hold random data written before vblade starts
RANDOM_BYTES = 1024 * 1024
VBLADE_SHELF = 1
VBLADE_SLOT = 2


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip the test, or fail it under CI, with a one-line reason."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


_root_status: Optional[str] = None


def _root_problem() -> str:
    """Empty if this process can make labs; otherwise why not (cached)."""
    global _root_status
    if _root_status is None:
        if os.geteuid() != 0:
            _root_status = "needs root for raw sockets and network namespaces"
        elif shutil.which("ip") is None:
            _root_status = "needs the `ip` command (apt-get install iproute2)"
        else:
            probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
            _root_status = "" if probe.returncode == 0 else "needs root for raw sockets and network namespaces (`ip netns` is unusable here)"
    return _root_status


def need_root() -> None:
    problem = _root_problem()
    if problem:
        missing(problem)


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


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


_lab_counter = itertools.count()


def unique_lab_name() -> str:
    """'aoec' + PID + a per-process counter, at most 14 characters."""
    return f"aoec{_base36(os.getpid())}{_base36(next(_lab_counter))}"[:14]


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


@dataclass
class VbladeLab:
    """vblade exporting ``image_path`` as ``shelf``.``slot`` on a fresh lab."""

    lab: Lab
    process: TargetProcess
    image_path: str
    shelf: int
    slot: int
    image_size: int = IMAGE_SIZE
    #: the random bytes written at offset 0 before vblade started
    initial_data: bytes = field(default=b"", repr=False)

    @property
    def host_if(self) -> str:
        return self.lab.host_if

    @property
    def target_if(self) -> str:
        return self.lab.target_if

    @property
    def netns(self) -> str:
        return self.lab.netns

    @property
    def mtu(self) -> int:
        return self.lab.mtu

    @property
    def target_mac(self) -> bytes:
        return self.lab.target_mac

    @property
    def max_sectors(self) -> int:
        """Sectors per ATA command at this MTU, as vblade computes it."""
        return (self.mtu - 36) // SECTOR

    def transport(self, **kwargs):
        from aoeconform.transport.raw import RawTransport

        return RawTransport(self.host_if, **kwargs)

    def read_image(self, offset: int, length: int) -> bytes:
        with open(self.image_path, "rb") as f:
            f.seek(offset)
            return f.read(length)


def _vblade_lab(tmp_path_factory, mtu: int, shelf: int, slot: int, extra_args=()) -> Iterator[VbladeLab]:
    need_root()
    need_program("vblade", "vblade")
    lab = Lab(unique_lab_name(), mtu=mtu)
    try:
        _up_or_skip(lab)
        image = tmp_path_factory.mktemp("vblade") / "disk.img"
        make_sparse_image(image, IMAGE_SIZE)
        initial = os.urandom(RANDOM_BYTES)
        with open(image, "r+b") as f:
            f.write(initial)
        log = str(image.with_suffix(".log"))
        process = lab.start_vblade(shelf, slot, image, extra_args, log_path=log)
        yield VbladeLab(lab, process, str(image), shelf, slot, initial_data=initial)
    finally:
        # Lab.down stops vblade and anything else left in the namespace.
        lab.down()


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
