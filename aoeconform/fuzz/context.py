"""The fuzzer's write policy (what it knows of the target is ``session.TargetFacts``).

Both are plain data: the case generator reads them to choose boundary
values (the last sector, the advertised sector count) and to keep every
request inside what the user allowed (no writes unless ``--allow-write``,
and then only inside the LBA window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aoeconform.errors import UsageError
from aoeconform.session.facts import spoofed_mac

#: sectors in the default write window when --allow-write names none
DEFAULT_WINDOW_SECTORS = 64


def second_mac(host_mac: bytes) -> bytes:
    """The second initiator's MAC: a spoofed source on the host's own link,
    the same one the suites use (session.facts.spoofed_mac)."""
    return spoofed_mac(host_mac)


@dataclass(frozen=True)
class WritePolicy:
    """Writes are off by default: write opcodes are turned into reads.

    With ``allow_write`` the standard write opcodes (0x30, 0x34) may be
    sent, but only with an LBA and sector count that keep the whole I/O
    inside [start, start + count) under every reading of the LBA bytes
    (28-bit, 48-bit, E flag or opcode)."""

    allow_write: bool = False
    start: int = 0
    count: int = 0

    @property
    def end(self) -> int:
        return self.start + self.count

    @classmethod
    def for_target(cls, allow_write: bool, window: Optional[str], capacity: Optional[int]) -> "WritePolicy":
        """``window`` is 'START:COUNT' in sectors; without it, 64 sectors in the
        middle of the disk (which needs the capacity from IDENTIFY)."""
        if not allow_write:
            return cls()
        if window:
            start_text, sep, count_text = window.partition(":")
            try:
                start, count = int(start_text, 0), int(count_text, 0)
            except ValueError:
                raise UsageError(f"--lba-window {window!r}: write it as START:COUNT in sectors, e.g. 4096:64") from None
            if not sep or start < 0 or count < 1:
                raise UsageError(f"--lba-window {window!r}: write it as START:COUNT in sectors, e.g. 4096:64")
        else:
            if not capacity:
                raise UsageError("--allow-write needs --lba-window START:COUNT: the target's capacity is unknown")
            count = min(DEFAULT_WINDOW_SECTORS, max(1, capacity // 4))
            start = capacity // 2
        if capacity is not None and start + count > capacity:
            raise UsageError(f"--lba-window {start}:{count} runs past the end of the disk ({capacity} sectors)")
        # 28-bit commands see only lba0-lba2 and the low nibble of lba3
        if start + count > 0x0FFFFFFF:
            raise UsageError(f"--lba-window {start}:{count}: keep the window below sector 0x0FFFFFFF so 28- and 48-bit readings agree")
        return cls(True, start, count)
