"""Where the cases go: a target address on a transport, and how to restart it.

``TargetEndpoint`` bundles the transport(s), the target's MAC, shelf and
slot, the second source MAC and a restart hook. The builders here make one
for the bundled reference target (synchronous loopback, in-memory link with
a server thread, or a lab namespace when root) and for a target named with
``--target IFACE[:SHELF.SLOT]``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

from aoeconform.errors import UsageError
from aoeconform.session.facts import spoofed_mac
from aoeconform.session.restart import restart_command
from aoeconform.transport.base import Transport

HARNESS_MAC = bytes.fromhex("020000a0e001")
BUNDLED_TARGET_MAC = bytes.fromhex("020000a0e0fe")
BUNDLED_SHELF, BUNDLED_SLOT = 1, 2
BUNDLED_IMAGE_BYTES = 16 << 20
#: in a lab the image is a sparse file, so it can be large enough for the cases
#: that address sectors above 2^28 (only written sectors take disk space)
LAB_IMAGE_BYTES = ((1 << 28) + (1 << 16)) * 512


@dataclass
class TargetEndpoint:
    transport: Transport
    mac: bytes
    shelf: int
    slot: int
    second: Optional[Transport] = None
    second_mac: bytes = b""
    #: how the second MAC reaches the link, for reports
    second_mode: str = ""
    restart: Optional[Callable[[], None]] = None
    readonly: bool = False
    bundled: bool = False
    #: what the target is, for the manifest ("bundled reference target in memory", "eth1:1.2")
    description: str = ""
    iface: str = ""
    closers: list = field(default_factory=list)
    #: frames the target sent before the run looked (start-up announcements)
    announcements: list = field(default_factory=list)
    #: the link is the host end of a lab veth pair (a known fast link: shorter timeout floor)
    lab: bool = False

    def __post_init__(self):
        if not self.second_mac:
            if self.second is not None:
                self.second_mac = self.second.mac
                self.second_mode = f"second interface {self.second.name}"
            else:
                self.second_mac = spoofed_mac(self.transport.mac)
                self.second_mode = f"spoofed source on {self.transport.name}"

    @property
    def mtu(self) -> int:
        return self.transport.mtu

    def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:  # closing must not hide the run's result
                pass
        self.closers.clear()


def bundled_loopback(quirks=(), readonly: bool = False, mtu: int = 1500, image_bytes: int = BUNDLED_IMAGE_BYTES) -> TargetEndpoint:
    """The reference target's logic answering inside send(): deterministic and fast.
    Images above 64 MiB are sparse (only written sectors are stored)."""
    from aoeconform.target.host import LoopbackHost

    host = LoopbackHost(quirks, readonly=readonly, mtu=mtu, image_bytes=image_bytes, shelf=BUNDLED_SHELF, slot=BUNDLED_SLOT,
                        target_mac=BUNDLED_TARGET_MAC, host_mac=HARNESS_MAC)
    return _bundled_endpoint(host, "bundled reference target (in memory, synchronous)")


def bundled_thread(quirks=(), readonly: bool = False, mtu: int = 1500, image_bytes: int = BUNDLED_IMAGE_BYTES) -> TargetEndpoint:
    """The reference target served in a thread on an in-memory Ethernet segment."""
    from aoeconform.target.host import ThreadHost

    host = ThreadHost(quirks, readonly=readonly, mtu=mtu, image_bytes=image_bytes, shelf=BUNDLED_SHELF, slot=BUNDLED_SLOT,
                      target_mac=BUNDLED_TARGET_MAC, host_mac=HARNESS_MAC, promiscuous=True, host_name="memory:harness")
    return _bundled_endpoint(host, "bundled reference target (in-memory link, server thread)")


def _bundled_endpoint(host, desc: str) -> TargetEndpoint:
    if host.quirks:
        desc += f", quirks: {', '.join(sorted(host.quirks))}"
    ep = TargetEndpoint(host.host, host.target_mac, host.shelf, host.slot, restart=host.restart, readonly=host.readonly,
                        bundled=True, description=desc, iface="memory")
    ep.closers.append(host.close)
    return ep


def bundled_lab(quirks=(), readonly: bool = False, mtu: int = 1500, image_bytes: int = LAB_IMAGE_BYTES,
                second_iface: Optional[str] = None) -> TargetEndpoint:
    """The reference target in its own network namespace behind a veth pair (root)."""
    import tempfile

    from aoeconform.lab import Lab
    from aoeconform.lab.service import PROBE_MAC
    from aoeconform.lab.testbed import unique_lab_name
    from aoeconform.transport.raw import RawTransport

    # unique per process and per call: several bundled targets may run side by side
    lab = Lab(unique_lab_name(), mtu=mtu)
    lab.up()
    workdir = tempfile.mkdtemp(prefix="aoeconform-run-")
    image_path = os.path.join(workdir, "disk.img")
    with open(image_path, "wb") as f:
        f.truncate(image_bytes)
    state: dict = {}

    def start():
        # probes from another MAC: their replies are not the start-up advertisement a case may check
        state["proc"] = lab.start_reference_target(BUNDLED_SHELF, BUNDLED_SLOT, image_path, quirks=quirks,
                                                   readonly=readonly, log_path=os.path.join(workdir, "target.log"),
                                                   probe_src=PROBE_MAC)

    def restart():
        proc = state.pop("proc", None)
        if proc is not None:
            proc.stop()
        start()

    try:
        start()
        transport = RawTransport(lab.host_if)
    except BaseException:
        lab.down()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
        raise
    target_mac = lab.target_mac
    ep = TargetEndpoint(transport, target_mac, BUNDLED_SHELF, BUNDLED_SLOT, restart=restart, readonly=readonly, bundled=True,
                        description=f"bundled reference target in lab namespace {lab.netns}", iface=lab.host_if)
    import shutil

    ep.closers += [lambda: shutil.rmtree(workdir, ignore_errors=True), lab.down, transport.close]
    return ep


def external(target: str, second_iface: Optional[str] = None, restart_cmd: Optional[str] = None,
             readonly: bool = False, discovery_timeout: float = 1.0) -> TargetEndpoint:
    """The target named by ``--target IFACE[:SHELF.SLOT]``, found by discovery."""
    from aoeconform.initiator.addressing import open_target

    transport, record = open_target(target, discovery_timeout, identify=False)
    second = None
    try:
        if second_iface:
            from aoeconform.transport.raw import RawTransport

            second = RawTransport(second_iface)
    except BaseException:
        transport.close()
        raise
    restart = restart_command(restart_cmd) if restart_cmd else None
    ep = TargetEndpoint(transport, record.mac, record.shelf, record.slot, second=second, restart=restart, readonly=readonly,
                        description=f"{transport.name}:{record.shelf}.{record.slot} ({record.mac.hex(':')})", iface=transport.name,
                        lab=_is_lab_interface(transport.name))
    ep.closers.append(transport.close)
    if second is not None:
        ep.closers.append(second.close)
    return ep


def _is_lab_interface(name: str) -> bool:
    """The host end of an `aoeconform lab` veth pair (named like one, and a veth)."""
    from aoeconform.lab.netns import NAME_PREFIX

    if not (name.startswith(NAME_PREFIX) and name.endswith("h")):
        return False
    try:
        out = subprocess.run(["ip", "-d", "-o", "link", "show", "dev", name], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return " veth " in out


def bundled(quirks=(), readonly: bool = False, mtu: int = 1500, mode: str = "auto") -> TargetEndpoint:
    """``mode``: auto (lab when root and `ip` works, else memory), lab, memory (thread), loopback."""
    if mode == "auto":
        mode = "lab" if _can_make_labs() else "memory"
    if mode == "lab":
        return bundled_lab(quirks, readonly, mtu)
    if mode == "memory":
        return bundled_thread(quirks, readonly, mtu)
    if mode == "loopback":
        return bundled_loopback(quirks, readonly, mtu)
    raise UsageError(f"unknown bundled target mode {mode!r}; use auto, lab, memory or loopback")


def _can_make_labs() -> bool:
    if os.geteuid() != 0:
        return False
    import shutil

    if shutil.which("ip") is None:
        return False
    try:
        return subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
