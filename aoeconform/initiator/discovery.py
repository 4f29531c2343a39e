"""Find the AoE targets on a segment, the way the Linux driver does (reference §1, §4, §7).

1. Broadcast a Query Config (read) to ff:ff:ff:ff:ff:ff with shelf 0xFFFF
   and slot 0xFF, and collect config replies until the timeout. The query is
   sent again halfway through, so one lost frame does not hide a target.
2. Keep one record per (target MAC, shelf, slot). Replies carrying a
   wildcard shelf or slot cannot be addressed; Linux drops them (and warns
   about shelf 0x0FFF), and so does this module, but it reports them.
3. IDENTIFY DEVICE each target (ATA 0xEC, sector count 1, lba3 0xA0, as
   Linux's ``aoecmd_ata_id``), unicast to its MAC and real shelf.slot, and
   read model, serial, firmware revision, capacity and LBA48 support.

The transport is any ``aoeconform.transport`` object. Time comes from an
injectable clock, and every wait is a bounded ``recv``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from aoeconform.session import requests
from aoeconform.session.facts import TargetFacts
from aoeconform.session.session import tool_tags
from aoeconform.transport.base import Transport
from aoeconform.wire import ConfigArg, DecodeError, Frame, Header, mac_to_str
from aoeconform.wire.constants import (
    BROADCAST_MAC,
    CCMD_READ,
    CMD_ATA,
    CMD_QUERY_CONFIG,
    ERROR_NAMES,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1.0
#: Linux refuses this shelf too: it is what unset dip switches on old Coraid shelves gave
LINUX_REJECTED_SHELF = 0x0FFF
#: IDENTIFY is retried this many times per target before giving up on it
IDENTIFY_ATTEMPTS = 3


@dataclass
class IgnoredReply:
    """A config reply that was not turned into a target, and why."""

    mac: bytes
    shelf: int
    slot: int
    reason: str
    #: what the reply said, when only its address was wrong (a wildcard): a
    #: lenient caller may still use the target under the address it asked for
    record: Optional[TargetFacts] = None

    def describe(self) -> str:
        return f"{mac_to_str(self.mac)} answered as {self.shelf}.{self.slot}: {self.reason}"


class DiscoveryResult(list):
    """The targets found (a list of ``TargetFacts``), plus what was ignored."""

    def __init__(self, targets=(), ignored: Optional[List[IgnoredReply]] = None, iface: str = "", timeout: float = 0.0):
        super().__init__(targets)
        self.ignored: List[IgnoredReply] = list(ignored or [])
        self.iface = iface
        self.timeout = timeout


def ignore_reason(shelf: int, slot: int) -> Optional[str]:
    """Why Linux would refuse a config reply from this address (``aoecmd_cfg_rsp``)."""
    if shelf == SHELF_BROADCAST or slot == SLOT_BROADCAST:
        return "a reply must carry the target's real shelf and slot, not a wildcard (§2.5); Linux drops it"
    if shelf == LINUX_REJECTED_SHELF:
        return "shelf 0x0fff is refused by Linux (unset dip switches)"
    return None


def query_config_frame(src: bytes, tag: int, shelf: int = SHELF_BROADCAST, slot: int = SLOT_BROADCAST, dst: bytes = BROADCAST_MAC) -> bytes:
    header = Header(dst=dst, src=src, shelf=shelf, slot=slot, command=CMD_QUERY_CONFIG, tag=tag)
    return Frame(header, ConfigArg(ccmd=CCMD_READ)).encode(pad=True)


def _decode(raw: bytes) -> Optional[Frame]:
    try:
        return Frame.decode(raw)
    except DecodeError as exc:
        log.debug("discovery: undecodable frame of %d bytes: %s", len(raw), exc)
        return None


def collect_configs(
    transport: Transport,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    shelf: int = SHELF_BROADCAST,
    slot: int = SLOT_BROADCAST,
    queries: int = 2,
    clock: Callable[[], float] = time.monotonic,
    rng: Optional[random.Random] = None,
) -> DiscoveryResult:
    """Step 1 and 2: broadcast Query Config and gather the replies (no IDENTIFY)."""
    new_tag = tool_tags(rng)
    queries = max(1, queries)
    start = clock()
    deadline = start + timeout
    send_times = [start + timeout * i / queries for i in range(queries)]
    found: Dict[Tuple[bytes, int, int], TargetFacts] = {}
    ignored: Dict[Tuple[bytes, int, int], IgnoredReply] = {}
    while True:
        now = clock()
        while send_times and send_times[0] <= now:
            send_times.pop(0)
            transport.send(query_config_frame(transport.mac, new_tag(), shelf, slot))
        if now >= deadline:
            break
        wake = min([deadline] + send_times[:1])
        raw = transport.recv(max(0.0, wake - now))
        if raw is None:
            continue
        frame = _decode(raw)
        if frame is None:
            continue
        h = frame.header
        # Any config reply counts, not only those with our tag: a target
        # that starts up meanwhile announces itself unsolicited (reference §1).
        if not h.response or h.command != CMD_QUERY_CONFIG or not isinstance(frame.arg, ConfigArg):
            continue
        key = (h.src, h.shelf, h.slot)
        if h.error_flag:
            reason = f"error reply {h.error} ({ERROR_NAMES.get(h.error, 'unknown code')})"
            ignored.setdefault(key, IgnoredReply(h.src, h.shelf, h.slot, reason))
            continue
        why = ignore_reason(h.shelf, h.slot)
        if why:
            if key not in ignored:
                usable = TargetFacts.from_config(frame, transport.mac, transport.mtu)
                ignored[key] = IgnoredReply(h.src, h.shelf, h.slot, why, usable)
                log.warning("discovery: ignoring %s", ignored[key].describe())
            continue
        if key in found:
            continue
        found[key] = TargetFacts.from_config(frame, transport.mac, transport.mtu)
    targets = sorted(found.values(), key=lambda r: (r.shelf, r.slot, r.mac))
    return DiscoveryResult(targets, list(ignored.values()), transport.name, timeout)


def identify_all(
    transport: Transport,
    records: List[TargetFacts],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    attempts: int = IDENTIFY_ATTEMPTS,
    clock: Callable[[], float] = time.monotonic,
    rng: Optional[random.Random] = None,
) -> None:
    """Step 3: IDENTIFY every record at once; each unanswered one is retried
    with a fresh tag, ``attempts`` tries in ``timeout`` seconds overall."""
    new_tag = tool_tags(rng)
    pending = {id(r): r for r in records}
    for record in records:
        record.identify_error = "no reply to IDENTIFY DEVICE"
    per_try = timeout / max(1, attempts)
    for _ in range(max(1, attempts)):
        if not pending:
            return
        waiting: Dict[int, TargetFacts] = {}
        for record in pending.values():
            request = requests.identify(record, new_tag(), src=transport.mac)
            waiting[request.header.tag] = record
            transport.send(request.encode(pad=True))
        deadline = clock() + per_try
        while waiting:
            now = clock()
            if now >= deadline:
                break
            raw = transport.recv(deadline - now)
            if raw is None:
                continue
            frame = _decode(raw)
            if frame is None or not frame.header.response or frame.header.command != CMD_ATA:
                continue
            answered = waiting.pop(frame.header.tag, None)
            if answered is None:
                continue  # not ours, or a late answer to an earlier try
            answered.apply_identify(frame)
            # an error reply is an answer too: a retry would get the same
            pending.pop(id(answered), None)


def discover(
    transport: Transport,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    identify: bool = True,
    identify_timeout: Optional[float] = None,
    clock: Callable[[], float] = time.monotonic,
    rng: Optional[random.Random] = None,
) -> DiscoveryResult:
    """Every target on ``transport``'s segment, sorted by shelf, slot and MAC.

    ``timeout`` bounds the config phase; IDENTIFY gets ``identify_timeout``
    (default: the same) on top. The result is a list of ``TargetFacts``
    with ``.ignored`` holding the replies that were not usable."""
    result = collect_configs(transport, timeout, clock=clock, rng=rng)
    if identify and result:
        identify_all(transport, list(result), timeout if identify_timeout is None else identify_timeout, clock=clock, rng=rng)
    return result


__all__ = [
    "DEFAULT_TIMEOUT",
    "DiscoveryResult",
    "IgnoredReply",
    "collect_configs",
    "discover",
    "identify_all",
    "ignore_reason",
    "query_config_frame",
]
