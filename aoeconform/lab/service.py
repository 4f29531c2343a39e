"""vblade as a restartable service in a lab namespace (``aoeconform lab vblade``).

``aoeconform run --restart-cmd`` needs a command that brings a dead or wedged
target back. For vblade in a lab that command is::

    aoeconform lab vblade --name aoec0 --shelf 1 --slot 2 disk.img --restart

It stops the vblade the pidfile names (only if that process is a vblade in
this lab's namespace, so a recycled PID is never killed), starts a new one in
the namespace, writes the pidfile and returns once vblade is ready.

Readiness is judged without sending anything: vblade broadcasts an unsolicited
Query Config response when it starts, and a raw socket opened on the host end
*before* vblade starts sees it. Sending a probe instead would put an extra
config reply on the link that a running suite could take for the
advertisement it is checking. Only when no advertisement comes within
``advert_wait`` seconds is a Query Config probe sent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Optional, Sequence

from aoeconform.errors import TargetUnreachable, UsageError
from aoeconform.wire import DecodeError, Header
from aoeconform.wire.constants import CMD_QUERY_CONFIG, ETH_P_AOE

from .netns import Lab, _pid_alive

PIDFILE_DIR = "/run/aoeconform"
#: source MAC of readiness probes: not the harness's, so their replies are not
#: taken for a start-up advertisement by a run on the same interface
PROBE_MAC = bytes.fromhex("02aec0000a0e")


def default_pidfile(lab_name: str, shelf: int, slot: int) -> str:
    return os.path.join(PIDFILE_DIR, f"{lab_name}-vblade-{shelf}.{slot}.pid")


def _read_pid(pidfile: str) -> Optional[int]:
    try:
        with open(pidfile) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _netns_of(pid: int) -> Optional[str]:
    out = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True)
    return out.stdout.strip() or None if out.returncode == 0 else None


def _is_our_vblade(pid: int, lab: Lab) -> bool:
    """The PID is a live vblade running in ``lab``'s namespace."""
    if not _pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0) == b"vblade" and _netns_of(pid) == lab.netns


def stop_vblade(lab: Lab, pidfile: str, timeout: float = 3.0) -> Optional[int]:
    """Stop the vblade named by ``pidfile`` (if it is ours); returns its PID or None."""
    pid = _read_pid(pidfile)
    if pid is None:
        return None
    if _is_our_vblade(pid, lab):
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.01)
            if not _pid_alive(pid):
                break
    try:
        os.unlink(pidfile)
    except OSError:
        pass
    return pid


def _is_advertisement(frame: bytes, shelf: int, slot: int, target_mac: bytes) -> bool:
    try:
        header = Header.decode(frame)
    except DecodeError:
        return False
    return (header.ethertype == ETH_P_AOE and header.response and header.command == CMD_QUERY_CONFIG
            and header.src == target_mac and header.shelf == shelf and header.slot == slot)


def start_vblade(
    lab: Lab,
    shelf: int,
    slot: int,
    image: str,
    extra_args: Sequence[str] = (),
    *,
    pidfile: Optional[str] = None,
    log_path: Optional[str] = None,
    restart: bool = False,
    ready_timeout: float = 10.0,
    advert_wait: float = 1.0,
) -> int:
    """Start vblade detached in ``lab``'s namespace and wait until it is up; returns its PID."""
    from aoeconform.transport.raw import RawTransport

    vblade = shutil.which("vblade")
    if vblade is None:
        raise UsageError("vblade is not installed; install it with `apt-get install vblade`")
    if not lab.exists():
        raise UsageError(f"lab {lab.name} does not exist; create it with `aoeconform lab up --name {lab.name}`")
    if not os.path.exists(image):
        raise UsageError(f"image {image} does not exist; create one with `truncate -s 64M {image}`")
    pidfile = pidfile or default_pidfile(lab.name, shelf, slot)
    old = _read_pid(pidfile)
    if old is not None and _is_our_vblade(old, lab):
        if not restart:
            raise UsageError(f"vblade {shelf}.{slot} already runs in lab {lab.name} (PID {old}); add --restart to replace it")
    stop_vblade(lab, pidfile)
    os.makedirs(os.path.dirname(os.path.abspath(pidfile)), exist_ok=True)
    if log_path is None:
        log_path = os.path.splitext(pidfile)[0] + ".log"
    argv = ["ip", "netns", "exec", lab.netns, vblade, *extra_args, str(shelf), str(slot), lab.target_if, os.fspath(image)]
    target_mac = lab.target_mac
    with RawTransport(lab.host_if) as transport:
        with open(log_path, "ab") as log:
            # `ip netns exec` execs vblade, so this PID is vblade's own
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        with open(pidfile, "w") as f:
            f.write(f"{popen.pid}\n")
        deadline = time.monotonic() + advert_wait
        while time.monotonic() < deadline:
            frame = transport.recv(max(0.0, deadline - time.monotonic()))
            if frame is not None and _is_advertisement(frame, shelf, slot, target_mac):
                return popen.pid
            if popen.poll() is not None:
                break
    if popen.poll() is not None:
        raise UsageError(f"vblade exited with status {popen.returncode} at start-up: {_tail(log_path)} (log: {log_path})")
    # no advertisement seen: ask
    try:
        lab.wait_for_target(shelf, slot, timeout=max(0.1, ready_timeout - advert_wait), probe_src=PROBE_MAC)
    except TargetUnreachable:
        popen.poll()
        raise
    return popen.pid


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:]) or "no output"
    except OSError:
        return "no output"
