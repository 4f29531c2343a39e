"""``--target IFACE[:SHELF.SLOT]``: parse it, then find that target on the wire.

Without SHELF.SLOT the interface must lead to exactly one target; with it,
that target must answer. Either way the answer is the ``TargetFacts`` from
discovery (reference §1: broadcast Query Config, then IDENTIFY).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from aoeconform.errors import TargetUnreachable, UsageError
from aoeconform.initiator.discovery import DEFAULT_TIMEOUT, DiscoveryResult, discover, identify_all
from aoeconform.session.facts import TargetFacts
from aoeconform.transport.base import Transport
from aoeconform.wire.constants import SHELF_BROADCAST, SLOT_BROADCAST

#: Linux interface names: at most 15 characters, no '/', ':' or white space
IFNAMSIZ_MAX = 15
_IFACE_RE = re.compile(r"^[^\s/:]{1,%d}$" % IFNAMSIZ_MAX)
_NUMBER_RE = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)$")

TARGET_SYNTAX = "IFACE[:SHELF.SLOT], e.g. aoec0h or aoec0h:1.2"


@dataclass(frozen=True)
class TargetSpec:
    iface: str
    shelf: Optional[int] = None
    slot: Optional[int] = None

    @property
    def addressed(self) -> bool:
        return self.shelf is not None

    def __str__(self) -> str:
        return self.iface if not self.addressed else f"{self.iface}:{self.shelf}.{self.slot}"


def _number(text: str, what: str, limit: int, spec: str) -> int:
    if not _NUMBER_RE.match(text):
        raise UsageError(f"--target {spec!r}: {what} {text!r} is not a number; expected {TARGET_SYNTAX}")
    value = int(text, 0) if text[:2].lower() == "0x" else int(text, 10)
    if value >= limit:
        raise UsageError(
            f"--target {spec!r}: {what} {value} is out of range; it must be below {limit} "
            f"({limit} itself is the broadcast wildcard, not a target address)"
        )
    return value


def parse_target(text: str) -> TargetSpec:
    """'eth1' or 'eth1:1.2' (decimal or 0x-hex numbers); UsageError otherwise."""
    if text is None or not text.strip():
        raise UsageError(f"--target is empty; expected {TARGET_SYNTAX}")
    iface, sep, address = text.partition(":")
    if not _IFACE_RE.match(iface):
        raise UsageError(f"--target {text!r}: {iface!r} is not an interface name; expected {TARGET_SYNTAX}")
    if not sep:
        return TargetSpec(iface)
    shelf_text, dot, slot_text = address.partition(".")
    if not dot:
        raise UsageError(f"--target {text!r}: the address needs SHELF.SLOT, e.g. {iface}:1.2")
    shelf = _number(shelf_text, "shelf", SHELF_BROADCAST, text)
    slot = _number(slot_text, "slot", SLOT_BROADCAST, text)
    return TargetSpec(iface, shelf, slot)


def _listing(found: DiscoveryResult) -> str:
    return ", ".join(r.describe() for r in found)


def _ignored_note(found: DiscoveryResult) -> str:
    if not found.ignored:
        return ""
    return "; ignored: " + "; ".join(i.describe() for i in found.ignored)


def resolve(
    spec: TargetSpec,
    transport: Transport,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    identify: bool = True,
    discover_fn: Callable[..., DiscoveryResult] = discover,
    lenient: bool = False,
) -> TargetFacts:
    """The one target ``spec`` names on ``transport``'s segment.

    Raises TargetUnreachable when nothing (or not the named target) answers,
    and UsageError when several targets answer and none was named. With
    ``lenient`` (the fuzzer), a single MAC that answered the named address
    with a wildcard shelf or slot is taken for it, its fault noted in
    ``address_fault``: a broken target is something to test, not to refuse."""
    found = discover_fn(transport, timeout, identify=identify)
    where = f"on {spec.iface}"
    if not spec.addressed:
        if len(found) == 1:
            return found[0]
        if not found:
            raise TargetUnreachable(
                f"no AoE target answered a broadcast Query Config {where} within {timeout:g} s{_ignored_note(found)}; "
                f"check that the target is running on the other end of {spec.iface}, that the link is up, "
                f"and that no Mac Mask list excludes this host's MAC"
            )
        raise UsageError(
            f"{len(found)} AoE targets answered {where}: {_listing(found)}; "
            f"choose one with --target {spec.iface}:SHELF.SLOT"
        )
    matches = [r for r in found if (r.shelf, r.slot) == (spec.shelf, spec.slot)]
    if matches:
        # Several MACs for one address are one target with several ports (or a
        # misconfiguration the checks report); the first, by MAC, is used.
        return matches[0]
    usable = [i for i in getattr(found, "ignored", []) if i.record is not None]
    if lenient and len({i.mac for i in usable}) == 1:
        record = dataclasses.replace(usable[0].record, shelf=spec.shelf, slot=spec.slot, address_fault=usable[0].describe())
        if identify:
            identify_all(transport, [record], timeout)
        return record
    others = f"; targets that did answer: {_listing(found)}" if found else ""
    raise TargetUnreachable(
        f"target {spec.shelf}.{spec.slot} did not answer {where} within {timeout:g} s{others}{_ignored_note(found)}; "
        f"check that it exports shelf {spec.shelf} slot {spec.slot} on the other end of {spec.iface}, "
        f"that the link is up, and that no Mac Mask list excludes this host's MAC"
    )


def open_target(
    text: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    identify: bool = True,
    transport_factory: Optional[Callable[[str], Transport]] = None,
    lenient: bool = False,
) -> Tuple[Transport, TargetFacts]:
    """Parse ``--target``, open a raw transport on its interface and resolve it.

    The caller owns the returned transport; it is closed here only on failure."""
    spec = parse_target(text)
    if transport_factory is None:
        from aoeconform.transport.raw import RawTransport

        transport_factory = RawTransport
    transport = transport_factory(spec.iface)
    try:
        return transport, resolve(spec, transport, timeout, identify=identify, lenient=lenient)
    except BaseException:
        transport.close()
        raise


__all__ = ["TargetSpec", "TARGET_SYNTAX", "open_target", "parse_target", "resolve"]
