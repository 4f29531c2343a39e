"""A throw-away test network: one veth pair with its target end in a netns.

::

    host namespace                      namespace <name>-ns
    <name>h  <==== veth pair ====>  <name>t    (target: vblade, our target)

The harness sends from the host end (``Lab.host_if``); a target runs inside
the namespace on ``Lab.target_if``, started with ``start_vblade`` or
``start_in_netns``. Traffic can only reach the other end of the pair, so
nothing leaks onto a real network.

Everything goes through iproute2's ``ip`` command. ``up`` and ``down`` are
idempotent, and ``up`` first removes a stale lab of the same name (including
processes left running in its namespace), and every lab whose owner died
without removing it (``reap_orphans``; owners are recorded by ``owners``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from aoeconform.errors import PermissionDenied, TargetUnreachable, UsageError
from aoeconform.wire import ConfigArg, DecodeError, Frame, Header
from aoeconform.wire.constants import (
    BROADCAST_MAC,
    CCMD_READ,
    CMD_QUERY_CONFIG,
    ETH_P_AOE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

from . import owners

# Lab names become interface names with one more character; Linux allows 15.
MAX_NAME_LEN = 14
# Every interface a lab creates starts with this, so `lab down` can never
# touch an interface the project did not make.
NAME_PREFIX = "aoec"
_NAME_RE = re.compile(r"^aoec[A-Za-z0-9_]{0,10}$")

DEFAULT_NAME = "aoec0"
DEFAULT_MTU = 1500
#: where `ip netns add` puts a namespace's handle
NETNS_DIR = "/run/netns"
#: what the lab's interfaces append to its name: host end, target end, guest link's two ends
_IF_SUFFIXES = ("h", "t", "g", "b")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise UsageError(
            f"lab name {name!r} is not allowed: use 'aoec' followed by up to "
            f"{MAX_NAME_LEN - len(NAME_PREFIX)} letters, digits or underscores (e.g. aoec0)"
        )


def require_ip_command() -> str:
    path = shutil.which("ip")
    if path is None:
        raise UsageError("the `ip` command (iproute2) is missing; install it with `apt-get install iproute2`")
    return path


def require_root(what: str = "a lab") -> None:
    if os.geteuid() != 0:
        raise PermissionDenied(f"{what} needs root (network namespaces, veth pairs, raw sockets); rerun with sudo")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        reason = detail[0] if detail else f"exit status {proc.returncode}"
        if "Operation not permitted" in reason:
            raise PermissionDenied(f"`ip {' '.join(args)}` was refused: {reason}; rerun as root")
        raise UsageError(f"`ip {' '.join(args)}` failed: {reason}")
    return proc


def parse_size(size) -> int:
    """Bytes from an int or a string such as '64M', '1G', '4096', '128s' (sectors)."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtTsS]?)i?[bB]?\s*", str(size))
    if not match:
        raise UsageError(f"cannot read size {size!r}: use bytes or a suffix K, M, G, T or s (sectors)")
    number, unit = int(match.group(1)), match.group(2).upper()
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "S": 512}[unit]
    return number * scale


def make_sparse_image(path, size) -> str:
    """Create (or resize) ``path`` as a sparse file of ``size`` bytes, zero-filled."""
    nbytes = parse_size(size)
    with open(path, "wb") as f:
        f.truncate(nbytes)
    return os.fspath(path)


def _query_config_frame(src_mac: bytes, shelf: int, slot: int, tag: int) -> bytes:
    header = Header(dst=BROADCAST_MAC, src=src_mac, shelf=shelf, slot=slot, command=CMD_QUERY_CONFIG, tag=tag)
    return Frame(header=header, arg=ConfigArg(ccmd=CCMD_READ)).encode(pad=True)


def _is_config_reply(frame: bytes, shelf: int, slot: int) -> bool:
    try:
        header = Header.decode(frame)
    except DecodeError:
        return False
    return (
        header.ethertype == ETH_P_AOE
        and header.response
        and header.command == CMD_QUERY_CONFIG
        and shelf in (SHELF_BROADCAST, header.shelf)
        and slot in (SLOT_BROADCAST, header.slot)
    )


class TargetProcess:
    """A target running in a lab namespace; ``stop()`` ends it."""

    def __init__(self, popen: subprocess.Popen, argv: List[str], log_path: str, owns_log: bool = False) -> None:
        self.popen = popen
        self.argv = argv
        self.log_path = log_path
        #: the log is a temporary file of ours, removed when the lab goes down
        self.owns_log = owns_log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 3.0) -> Optional[int]:
        """Terminate the process group (kill it if it lingers); returns the exit status."""
        if self.popen.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.popen.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.popen.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        return self.popen.poll()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self) -> str:
        return f"TargetProcess(pid={self.pid}, argv={self.argv!r})"


class Lab:
    """A veth pair whose target end lives in its own network namespace."""

    def __init__(self, name: str = DEFAULT_NAME, mtu: int = DEFAULT_MTU) -> None:
        _check_name(name)
        if not 68 <= mtu <= 65535:
            raise UsageError(f"MTU {mtu} is out of range: use 68 to 65535 (e.g. 1500 or 9000)")
        self.name = name
        self.mtu = mtu
        self.netns = f"{name}-ns"
        self.host_if = f"{name}h"
        self.target_if = f"{name}t"
        self._processes: List[TargetProcess] = []

    # -- state -------------------------------------------------------------

    def _netns_exists(self) -> bool:
        listing = _ip("netns", "list", check=False).stdout
        return any(line.split()[:1] == [self.netns] for line in listing.splitlines())

    def _host_link_exists(self) -> bool:
        return _ip("link", "show", "dev", self.host_if, check=False).returncode == 0

    def exists(self) -> bool:
        """True if any part of this lab is present."""
        require_ip_command()
        return self._netns_exists() or self._host_link_exists()

    @property
    def host_mac(self) -> bytes:
        with open(f"/sys/class/net/{self.host_if}/address") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))

    @property
    def target_mac(self) -> bytes:
        out = _ip("-n", self.netns, "-o", "link", "show", "dev", self.target_if).stdout
        match = re.search(r"link/ether ([0-9a-f:]{17})", out)
        if not match:
            raise UsageError(f"cannot read the MAC address of {self.target_if} in {self.netns}")
        return bytes.fromhex(match.group(1).replace(":", ""))

    # -- up and down -------------------------------------------------------

    def up(self, owned: bool = True) -> "Lab":
        """Create the lab. ``owned``: it belongs to this process, and once this
        process is gone without taking it down, the next lab start-up removes
        it; otherwise (``aoeconform lab up``) it stays until taken down by name."""
        require_ip_command()
        require_root("creating a lab")
        reap_orphans()
        self.down()  # a stale lab of the same name, from a crashed run
        if owned:
            with owners.locked():
                owners.claim(self.name)
        try:
            _ip("netns", "add", self.netns)
        except UsageError:
            # `ip netns add` prepares /run/netns on first use; two labs
            # created at once can race there. Once more settles it.
            time.sleep(0.1)
            if not self._netns_exists():
                _ip("netns", "add", self.netns)
        try:
            _ip("link", "add", self.host_if, "mtu", str(self.mtu), "type", "veth",
                "peer", "name", self.target_if, "mtu", str(self.mtu), "netns", self.netns)
            self._quiet_ipv6(self.host_if)
            _ip("link", "set", "dev", self.host_if, "up")
            _ip("-n", self.netns, "link", "set", "dev", "lo", "up")
            _ip("-n", self.netns, "link", "set", "dev", self.target_if, "up")
        except BaseException:
            self.down()
            raise
        return self

    @staticmethod
    def _quiet_ipv6(iface: str) -> None:
        # No router solicitations or MLD reports on the link: captures then
        # hold AoE only. Best effort: the kernel may have no IPv6.
        try:
            with open(f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6", "w") as f:
                f.write("1")
        except OSError:
            pass

    def down(self) -> None:
        require_ip_command()
        require_root("removing a lab")
        for proc in self._processes:
            proc.stop()
            if proc.owns_log:
                try:
                    os.unlink(proc.log_path)
                except OSError:
                    pass
        self._processes.clear()
        if self._netns_exists():
            self._kill_netns_processes()
            _ip("netns", "del", self.netns, check=False)
        if self._host_link_exists():
            # deleting one end of a veth pair deletes the other
            _ip("link", "del", "dev", self.host_if, check=False)
        _release_if_gone(self.name)

    def _kill_netns_processes(self) -> None:
        # A namespace with processes in it outlives `ip netns del`, and so
        # would the veth end inside it.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [int(p) for p in _ip("netns", "pids", self.netns, check=False).stdout.split() if p.isdigit()]
            pids = [p for p in pids if p != os.getpid()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
                time.sleep(0.02)

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # -- targets -----------------------------------------------------------

    def start_in_netns(
        self,
        argv: Sequence[str],
        *,
        log_path: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> TargetProcess:
        """Start ``argv`` inside the lab namespace; output goes to ``log_path``.

        Without ``log_path`` the output goes to a temporary file that
        ``down()`` removes; pass a path to keep it.
        """
        owns_log = log_path is None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=f"aoeconform-{self.name}-", suffix=".log")
            os.close(fd)
        full = ["ip", "netns", "exec", self.netns, *[str(a) for a in argv]]
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, for stop()
            )
        proc = TargetProcess(popen, full, log_path, owns_log)
        self._processes.append(proc)
        return proc

    def start_vblade(
        self,
        shelf: int,
        slot: int,
        image_path,
        extra_args: Sequence[str] = (),
        *,
        log_path: Optional[str] = None,
        ready_timeout: float = 10.0,
    ) -> TargetProcess:
        """Run Debian's vblade on the target end and wait until it answers."""
        vblade = shutil.which("vblade")
        if vblade is None:
            raise UsageError("vblade is not installed; install it with `apt-get install vblade`")
        argv = [vblade, *extra_args, str(shelf), str(slot), self.target_if, os.fspath(image_path)]
        proc = self.start_in_netns(argv, log_path=log_path)
        try:
            self.wait_for_target(shelf, slot, timeout=ready_timeout, process=proc)
        except BaseException:
            proc.stop()
            raise
        return proc

    def start_reference_target(
        self,
        shelf: int,
        slot: int,
        image_path,
        *,
        quirks: Sequence[str] = (),
        readonly: bool = False,
        log_path: Optional[str] = None,
        ready_timeout: float = 15.0,
        probe_src: Optional[bytes] = None,
    ) -> TargetProcess:
        """Run the bundled reference target (``aoeconform target``) on the
        target end and wait until it answers."""
        import sys

        argv = [sys.executable, "-m", "aoeconform", "target", os.fspath(image_path), "--iface", self.target_if,
                "--shelf", str(shelf), "--slot", str(slot)]
        if readonly:
            argv.append("--readonly")
        for quirk in quirks:
            argv += ["--quirk", quirk]
        proc = self.start_in_netns(argv, log_path=log_path)
        try:
            self.wait_for_target(shelf, slot, timeout=ready_timeout, process=proc, probe_src=probe_src)
        except BaseException:
            proc.stop()
            raise
        return proc

    def wait_for_target(
        self,
        shelf: int = SHELF_BROADCAST,
        slot: int = SLOT_BROADCAST,
        *,
        timeout: float = 10.0,
        process: Optional[TargetProcess] = None,
        interval: float = 0.05,
        probe_src: Optional[bytes] = None,
    ) -> bytes:
        """Send Query Config until shelf.slot answers; returns the reply frame.

        ``probe_src`` sends the probes from that MAC instead of the host end's
        own, so a harness on the same interface can tell their replies apart."""
        from aoeconform.transport.raw import RawTransport

        deadline = time.monotonic() + timeout
        with RawTransport(self.host_if) as transport:
            tag = 0x80000000 | (os.getpid() & 0x7FFFFFFF)
            probe = _query_config_frame(probe_src or transport.mac, shelf, slot, tag)
            while True:
                transport.send(probe)
                next_probe = min(deadline, time.monotonic() + interval)
                while True:
                    frame = transport.recv(max(0.0, next_probe - time.monotonic()))
                    if frame is None:
                        break
                    if _is_config_reply(frame, shelf, slot):
                        return frame
                if process is not None and not process.alive():
                    raise UsageError(
                        f"target exited with status {process.popen.returncode} before answering: "
                        f"{process.log_tail() or 'no output'} (log: {process.log_path})"
                    )
                if time.monotonic() >= deadline:
                    raise TargetUnreachable(
                        f"no Query Config reply from shelf {shelf} slot {slot} on {self.host_if} "
                        f"within {timeout:g} s"
                    )

    def __repr__(self) -> str:
        return f"Lab(name={self.name!r}, mtu={self.mtu})"


class GuestLink:
    """A veth pair in the host namespace for an initiator that is not ours:
    it attaches to ``initiator_if`` (``<name>g``); a bridge forwards between
    ``bridge_if`` (``<name>b``) and the link that reaches the target."""

    def __init__(self, name: str, mtu: int = DEFAULT_MTU) -> None:
        _check_name(name)
        self.name = name
        self.mtu = mtu
        self.initiator_if = f"{name}g"
        self.bridge_if = f"{name}b"

    def exists(self) -> bool:
        return _ip("link", "show", "dev", self.initiator_if, check=False).returncode == 0

    def up(self, owned: bool = True) -> "GuestLink":
        require_root("creating a guest link")
        self.down()
        if owned:
            with owners.locked():
                owners.claim(self.name)
        try:
            _ip("link", "add", self.initiator_if, "mtu", str(self.mtu), "type", "veth",
                "peer", "name", self.bridge_if, "mtu", str(self.mtu))
            for iface in (self.initiator_if, self.bridge_if):
                Lab._quiet_ipv6(iface)
                _ip("link", "set", "dev", iface, "up")
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        if self.exists():
            # deleting one end of a veth pair deletes the other
            _ip("link", "del", "dev", self.initiator_if, check=False)
        _release_if_gone(self.name)

    def __enter__(self) -> "GuestLink":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


class BridgedLab(Lab):
    """A lab with a guest link for an initiator that is not ours::

        initiator on <name>g ══ <name>b ─[bridge]─ <name>h ══ <name>t (netns, target)

    The initiator (the Linux guest) attaches to ``initiator_if``; an
    impairment bridge forwards between ``bridge_if`` and ``host_if``.
    """

    def __init__(self, name: str = DEFAULT_NAME, mtu: int = DEFAULT_MTU) -> None:
        super().__init__(name, mtu)
        self.link = GuestLink(name, mtu)
        self.initiator_if = self.link.initiator_if
        self.bridge_if = self.link.bridge_if

    def exists(self) -> bool:
        return super().exists() or self.link.exists()

    def up(self, owned: bool = True) -> "BridgedLab":
        super().up(owned)
        try:
            self.link.up(owned)
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        super().down()
        self.link.down()


def _release_if_gone(name: str) -> None:
    """Drop the owner record once nothing of the lab is left (a bridged lab
    goes down in two steps; the record lasts until the second)."""
    if os.path.exists(os.path.join(NETNS_DIR, f"{name}-ns")):
        return
    if any(os.path.exists(f"/sys/class/net/{name}{suffix}") for suffix in _IF_SUFFIXES):
        return
    owners.release(name)


@dataclass
class Reaped:
    """What ``reap_orphans`` did: labs removed, and labs left alone."""

    removed: List[str] = field(default_factory=list)
    #: labs whose owner still runs
    in_use: List[str] = field(default_factory=list)
    #: labs with no (readable) owner record: made by `aoeconform lab up`, or
    #: by an older aoeconform; only `lab down --name` removes them
    unowned: List[str] = field(default_factory=list)

    def summary(self) -> str:
        removed = f"removed {len(self.removed)} orphaned lab{'s' if len(self.removed) != 1 else ''}"
        if self.removed:
            removed += f" ({', '.join(self.removed)})"
        return (f"{removed}; left alone {len(self.in_use)} in use and {len(self.unowned)} without an owner record"
                + (f" ({', '.join(self.unowned)}: remove with `aoeconform lab down --name NAME`)" if self.unowned else ""))


def _present_lab_names() -> List[str]:
    """Names of the labs with a namespace or an interface here (ours by their prefix)."""
    names = set()
    try:
        for entry in os.listdir(NETNS_DIR):
            if entry.endswith("-ns") and _NAME_RE.match(entry[:-3]):
                names.add(entry[:-3])
    except FileNotFoundError:
        pass
    try:
        for iface in os.listdir("/sys/class/net"):
            if iface[-1:] in _IF_SUFFIXES and _NAME_RE.match(iface[:-1]):
                names.add(iface[:-1])
    except FileNotFoundError:
        pass
    return sorted(names)


def reap_orphans(census: bool = False) -> Reaped:
    """Remove every lab whose recorded owner is no longer running (its
    namespace, the processes in it and its veth pairs), and nothing else:
    never a lab without a record (it is not known to be ours to remove), never
    one whose owner runs. ``census`` also lists the labs present without a record."""
    reaped = Reaped()
    with owners.locked():
        for name in owners.recorded():
            owner = owners.read(name)
            if owner is None:
                reaped.unowned.append(name)
            elif owners.alive(owner):
                reaped.in_use.append(name)
            else:
                BridgedLab(name).down()  # whatever parts it had
                owners.release(name)
                reaped.removed.append(name)
    if census:
        recorded = set(owners.recorded())
        reaped.unowned += [n for n in _present_lab_names() if n not in recorded]
    return reaped


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists" for kill(); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
