"""What a loaded suite is: plain data, with the file and line of everything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

LEVELS = ("MUST", "SHOULD", "MAY")

#: what a case may require of the target or of the run (skip reasons name them)
CAPABILITIES = (
    "writes",  # --allow-write: the case changes the media
    "lba48",  # IDENTIFY reports the 48-bit feature set
    "mask",  # the target answers Mac Mask List
    "reserve",  # the target answers Reserve/Release
    "config",  # config string changes are allowed (restored afterwards)
    "second_mac",  # a second source MAC (spoofed on the same link or a second interface)
    "capacity_above_2_28",  # more than 2^28 sectors
    "identify",  # IDENTIFY DEVICE was answered
    "restart",  # the harness can restart the target (bundled, or --restart-cmd)
    "readonly",  # the target exports read-only (--readonly-target)
    "load",  # the reference initiator is available for background traffic
    "check_power",  # CHECK POWER MODE is implemented (rule 30: optional; ABRT conforms)
    "flush",  # FLUSH CACHE is implemented (rule 31: a target without a cache may refuse it)
    "linux",  # --linux: the kernel's AoE driver can boot in user-mode Linux on a link to the target
)

#: strictness order of the levels, strictest first
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def weaker_level(a: str, b: str) -> str:
    """The less strict of two levels: a failure counts at the level of the
    rule it breaks, never above the case's own level."""
    return a if LEVEL_RANK.get(a, 0) >= LEVEL_RANK.get(b, 0) else b

ACTIONS = (
    "send", "expect", "duplicate", "batch", "write", "read_verify", "flush",
    "load", "liveness", "restore", "restart", "sleep", "set", "linux",
)


@dataclass
class Step:
    action: str
    body: Any
    #: the whole step mapping (send steps carry their expect beside it)
    raw: dict
    line: int
    label: str = ""
    timeout: Optional[float] = None
    #: the rule(s) this step checks, when not the case's headline rule
    rule: list[int] = field(default_factory=list)
    #: capabilities this step alone needs: without them the step is skipped, not the case
    requires: list[str] = field(default_factory=list)

    @property
    def expect(self):
        return self.raw.get("expect") if self.action == "send" else None


@dataclass
class Case:
    id: str
    requirement: str
    section: str
    level: str
    steps: list[Step]
    file: str
    line: int
    suite: str
    rule: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    note: str = ""
    uncatchable: str = ""
    catches: list[str] = field(default_factory=list)
    timeout: Optional[float] = None
    #: the case as written in the suite (for replay files)
    source: dict = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def rules_checked(self) -> list[int]:
        """The case's rules and every rule one of its steps checks, in order."""
        return list(dict.fromkeys(self.rule + [r for s in self.steps for r in s.rule]))

    def describe(self) -> str:
        return f"{self.id} [{self.level} §{self.section}] {self.requirement}"


@dataclass
class Suite:
    name: str
    description: str
    path: str
    sha256: str
    cases: list[Case]
