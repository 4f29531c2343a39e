"""Who owns a lab: a record per lab under ``/run/aoeconform/labs``.

A lab outlives the process that made it when that process is SIGKILLed (an
xdist worker, a fleet worker, a run killed by a CI timeout): its namespace,
its veth pairs and the target running inside stay behind, and nothing else
would ever remove them. So ``Lab.up`` writes ``<name>`` here holding the
owner's PID and the start time the kernel gives that process
(``/proc/PID/stat``, field 22), and ``Lab.down`` removes it once the last
piece of the lab is gone. A lab whose owner no longer runs is an orphan; the
start time tells a recycled PID from the owner, so a new process that happens
to get the old PID does not keep an orphan alive.

Labs made to outlive their maker (``aoeconform lab up``) have no record and
are only ever removed by name. The records live in /run, a tmpfs, so they go
with a reboot, as the namespaces do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from dataclasses import dataclass
from typing import Iterator, List, Optional

OWNERS_DIR = "/run/aoeconform/labs"
_LOCK = ".lock"
#: lab names as netns.py allows them (records with other names are not ours)
_RECORD_RE = re.compile(r"^aoec[A-Za-z0-9_]{0,10}$")


@dataclass(frozen=True)
class Owner:
    pid: int
    #: the process's start time in clock ticks after boot (/proc/PID/stat field 22)
    start: int


def process_start(pid: int) -> Optional[int]:
    """The start time of a running process; None if there is none (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # the command name in parentheses may hold spaces: split after it
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] == "Z":
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(pid, process_start(pid) or 0)


def alive(owner: Owner) -> bool:
    """The owner is still running: same PID and the same start time."""
    return process_start(owner.pid) == owner.start


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Claims and reaping take turns, so a reaper never removes a lab that is
    being claimed, and two reapers never remove the same one at once."""
    os.makedirs(OWNERS_DIR, exist_ok=True)
    with open(os.path.join(OWNERS_DIR, _LOCK), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _path(name: str) -> str:
    return os.path.join(OWNERS_DIR, name)


def claim(name: str, owner: Optional[Owner] = None) -> None:
    """Record ``owner`` (default: this process) as the owner of lab ``name``; call under ``locked()``."""
    owner = owner or this_process()
    os.makedirs(OWNERS_DIR, exist_ok=True)
    temporary = f"{_path(name)}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        f.write(f"{owner.pid} {owner.start}\n")
    os.replace(temporary, _path(name))  # a reader sees the old record or the new, never half of one


def read(name: str) -> Optional[Owner]:
    try:
        with open(_path(name)) as f:
            pid, start = f.read().split()
        return Owner(int(pid), int(start))
    except (OSError, ValueError):
        return None


def release(name: str) -> None:
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        pass


def recorded() -> List[str]:
    """Names of the labs that have an owner record."""
    try:
        names = os.listdir(OWNERS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _RECORD_RE.match(n))
