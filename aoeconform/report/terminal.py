"""What the run prints: a progress bar on a terminal, plain lines otherwise.

Plain lines are used when stdout is not a TTY or when CI=true, so logs stay
readable; failures are always printed with their message.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional, TextIO

from aoeconform.scenario.results import CaseResult

LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP", "xfailed": "XFAIL",
          "xpassed": "XPASS", "timeout": "TIMEOUT"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class Progress:
    def __init__(self, total: int, stream: Optional[TextIO] = None, bar: Optional[bool] = None, verbose: bool = False):
        self.total = total
        self.stream = stream or sys.stdout
        self.bar = (self.stream.isatty() and not in_ci()) if bar is None else bar
        self.verbose = verbose
        self.done = 0

    def _clear(self) -> None:
        if self.bar:
            self.stream.write("\r\x1b[K")

    def case_started(self, case, repeat: int) -> None:
        if self.bar:
            width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 60))
            filled = int(width * self.done / max(1, self.total))
            self.stream.write(f"\r\x1b[K[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total} {case.id[:50]}")
            self.stream.flush()

    def case_finished(self, result: CaseResult) -> None:
        self.done += 1
        show = not self.bar or result.failing or result.outcome == "xpassed" or self.verbose
        if show:
            self._clear()
            line = f"{LABELS.get(result.outcome, result.outcome.upper()):<7} {result.name}"
            if result.failed_rule is not None and result.outcome != "passed":
                line += f" [rule {result.failed_rule}, {result.gating_level}]"
            if result.outcome != "passed" and result.message:
                line += f" — {result.message}"
            self.stream.write(line[:2000] + "\n")
            for note in result.notes:
                self.stream.write(f"        note: {note}\n")
            self.stream.flush()

    def finish(self) -> None:
        self._clear()
        self.stream.flush()


class Fanout:
    """Several run listeners as one."""

    def __init__(self, *listeners):
        self.listeners = [x for x in listeners if x is not None]

    def case_started(self, case, repeat: int) -> None:
        for x in self.listeners:
            x.case_started(case, repeat)

    def case_finished(self, result) -> None:
        for x in self.listeners:
            x.case_finished(result)
