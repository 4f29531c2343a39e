"""Target state a runner may change and must put back: the config string,
the Mac Mask list and the reservation. Plain data and the pure part of
restoring it (which directives turn one Mac Mask list into another)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

from aoeconform.wire import Directive
from aoeconform.wire.constants import DCMD_ADD, DCMD_DELETE

from .facts import TargetFacts

#: the parts of target state, as ``Session.restore`` and the scenario format name them
PARTS = ("config", "mask", "reserve")


@dataclass(frozen=True)
class TargetState:
    """None for a part not known (unsupported, or unanswered when the snapshot was taken)."""

    config: Optional[bytes] = None
    mask: Optional[tuple] = None
    reservation: Optional[tuple] = None

    @classmethod
    def of(cls, facts: TargetFacts) -> "TargetState":
        """What the start-up probe recorded in ``facts``."""
        return cls(facts.config,
                   None if facts.mask is None else tuple(facts.mask),
                   None if facts.reservation is None else tuple(facts.reservation))


def mask_directives(current: Sequence[bytes], wanted: Sequence[bytes], requester: Optional[bytes] = None) -> List[Directive]:
    """Directives that turn the list ``current`` into ``wanted``: additions
    first and the requester's own deletion last, so it is never locked out
    midway (a list without it excludes it until the list is empty)."""
    directives = [Directive(DCMD_ADD, m) for m in wanted if m not in current]
    deletions = [m for m in current if m not in wanted]
    deletions.sort(key=lambda m: m == requester)
    return directives + [Directive(DCMD_DELETE, m) for m in deletions]
