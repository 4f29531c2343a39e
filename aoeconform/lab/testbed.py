"""Throw-away labs for tests: unique names, the root check, vblade on a fresh lab.

The project's own tests (``tests/conftest.py``) and the pytest plugin's
fixtures (``aoeconform.pytest_plugin``) both build labs this way, so a
vendor's tests get the same lifecycle the harness's tests rely on.

Lab names carry this process's PID, so parallel xdist workers (one process
each) and other sessions on the same machine never share or remove each
other's namespaces and interfaces.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

from .netns import Lab, TargetProcess, make_sparse_image

SECTOR = 512
VBLADE_IMAGE_SIZE = 64 * 1024 * 1024
#: the image's first RANDOM_BYTES hold random data written before vblade starts
RANDOM_BYTES = 1024 * 1024
VBLADE_SHELF = 1
VBLADE_SLOT = 2


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


_root_status: Optional[str] = None


def root_problem() -> str:
    """Empty if this process can make labs; otherwise why not, in one line (cached)."""
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


@dataclass
class VbladeLab:
    """vblade exporting ``image_path`` as ``shelf``.``slot`` on a fresh lab."""

    lab: Lab
    process: TargetProcess
    image_path: str
    shelf: int
    slot: int
    image_size: int = VBLADE_IMAGE_SIZE
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
    def target(self) -> str:
        """The ``--target`` / ``--aoe-target`` address of this vblade."""
        return f"{self.host_if}:{self.shelf}.{self.slot}"

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


@contextlib.contextmanager
def vblade_lab(workdir, mtu: int = 1500, shelf: int = VBLADE_SHELF, slot: int = VBLADE_SLOT,
               extra_args: Sequence[str] = (), image_size: int = VBLADE_IMAGE_SIZE,
               random_bytes: int = RANDOM_BYTES, up=None) -> Iterator[VbladeLab]:
    """A new lab with vblade serving a sparse image in ``workdir`` (random data
    in its first ``random_bytes``); the lab, vblade with it, goes down on exit,
    also after an exception. ``up`` brings the lab up (default ``Lab.up``; tests
    pass one that turns a refusal into a skip)."""
    lab = Lab(unique_lab_name(), mtu=mtu)
    try:
        (up or Lab.up)(lab)
        image = os.path.join(os.fspath(workdir), "disk.img")
        make_sparse_image(image, image_size)
        initial = os.urandom(random_bytes)
        with open(image, "r+b") as f:
            f.write(initial)
        log = os.path.splitext(image)[0] + ".log"
        process = lab.start_vblade(shelf, slot, image, extra_args, log_path=log)
        yield VbladeLab(lab, process, image, shelf, slot, image_size=image_size, initial_data=initial)
    finally:
        # Lab.down stops vblade and anything else left in the namespace.
        lab.down()
