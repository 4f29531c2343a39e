"""What running a case produces: an outcome, a message, the evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED, TIMEOUT = (
    "passed", "failed", "error", "skipped", "xfailed", "xpassed", "timeout",
)
OUTCOMES = (PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED, TIMEOUT)
#: summary keys, in report.json order ("errors", "timeouts" are plural there)
SUMMARY_KEYS = {PASSED: "passed", FAILED: "failed", ERROR: "errors", SKIPPED: "skipped",
                XFAILED: "xfailed", XPASSED: "xpassed", TIMEOUT: "timeouts"}
#: outcomes that mean the target did not do what the case requires
FAILING = (FAILED, TIMEOUT, ERROR)

# typed skip reasons
UNSUPPORTED = "unsupported"
NOT_PERMITTED = "not_permitted"
PREREQUISITE_FAILED = "prerequisite_failed"
EXCLUDED_BY_WINDOW = "excluded_by_window"


@dataclass
class FrameRecord:
    time: float  # seconds since the epoch
    direction: str  # "out" or "in"
    iface: str
    raw: bytes

    def as_dict(self) -> dict:
        return {"time": round(self.time, 6), "direction": self.direction, "iface": self.iface, "hex": self.raw.hex()}


@dataclass
class StepRecord:
    index: int
    action: str
    line: int
    label: str = ""
    ok: bool = True
    message: str = ""
    #: verdicts as dicts (field-by-field checks), one per checked reply
    verdicts: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "action": self.action, "line": self.line, "label": self.label,
                "ok": self.ok, "message": self.message, "verdicts": self.verdicts}


@dataclass
class CaseResult:
    id: str
    requirement: str
    section: str
    level: str
    outcome: str
    message: str = ""
    rule: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    suite: str = ""
    file: str = ""
    line: int = 0
    skip_reason: Optional[str] = None
    expected_failure: Optional[str] = None
    repeat: int = 0
    start: float = 0.0
    duration: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    frames: list[FrameRecord] = field(default_factory=list)
    #: frames the case sent, in order, for the replay file
    sent: list[bytes] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the failing step's index, when there is one
    failed_step: Optional[int] = None
    exchanges: int = 0
    #: every rule the case checks (its own and its steps'), for the traceability matrix
    checked_rules: list = field(default_factory=list)
    #: the rule a failure is charged to: the failing step's, which need not be the headline rule
    failed_rule: Optional[int] = None
    #: the level the failure counts at: the case's, or the charged rule's when that is weaker
    failed_level: Optional[str] = None

    @property
    def gating_level(self) -> str:
        return self.failed_level or self.level

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    @property
    def name(self) -> str:
        return self.id if not self.repeat else f"{self.id}#{self.repeat + 1}"

    def as_dict(self, frames: bool = False) -> dict:
        out = {
            "id": self.id, "requirement": self.requirement, "section": self.section, "level": self.level,
            "outcome": self.outcome, "message": self.message, "rule": self.rule, "tags": self.tags,
            "suite": self.suite, "file": self.file, "line": self.line, "duration": round(self.duration, 6),
            "exchanges": self.exchanges,
        }
        if self.repeat:
            out["repeat"] = self.repeat + 1
        if self.skip_reason:
            out["skip_reason"] = self.skip_reason
        if self.expected_failure:
            out["expected_failure"] = self.expected_failure
        if self.failed_rule is not None:
            out["failed_rule"] = self.failed_rule
            out["failed_level"] = self.gating_level
        if self.notes:
            out["notes"] = self.notes
        if self.steps and (self.outcome != "passed" or frames):
            out["steps"] = [s.as_dict() for s in self.steps]
        if frames:
            out["frames"] = [f.as_dict() for f in self.frames]
        return out
