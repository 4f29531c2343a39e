"""The shadow disk: what the harness knows each sector of the target holds.

A sector is unknown until the harness reads it or a write to it is
acknowledged. Writes update the model only once the target confirms them
(or, for asynchronous writes and writes whose reply was lost, once no error
was signalled: rule 33 says the data must be readable afterwards). A write
the target rejected leaves the model as it was, so a later read catches a
target that wrote anyway. The engine reads unknown sectors before it writes
them, so "unchanged" always has a value to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SECTOR = 512


@dataclass
class Mismatch:
    lba: int
    expected: bytes
    actual: bytes

    def describe(self) -> str:
        offset = next((i for i, (a, b) in enumerate(zip(self.expected, self.actual)) if a != b), min(len(self.expected), len(self.actual)))
        return (
            f"sector {self.lba} differs from what was written, first at byte {offset}: "
            f"expected {self.expected[offset:offset + 16].hex()} got {self.actual[offset:offset + 16].hex()}"
        )


class ShadowDisk:
    def __init__(self) -> None:
        self._sectors: dict[int, bytes] = {}
        #: sectors whose content is known only because a write was accepted
        self.written: set[int] = set()

    def known(self, lba: int) -> bool:
        return lba in self._sectors

    def unknown_in(self, lba: int, count: int) -> list[int]:
        return [s for s in range(lba, lba + count) if s not in self._sectors]

    def get(self, lba: int) -> Optional[bytes]:
        return self._sectors.get(lba)

    def learn(self, lba: int, data: bytes) -> None:
        """Record sectors as read from the target (only those not yet known)."""
        for i in range(len(data) // SECTOR):
            self._sectors.setdefault(lba + i, bytes(data[i * SECTOR:(i + 1) * SECTOR]))

    def write(self, lba: int, data: bytes) -> None:
        for i in range(len(data) // SECTOR):
            self._sectors[lba + i] = bytes(data[i * SECTOR:(i + 1) * SECTOR])
            self.written.add(lba + i)

    def forget(self, lba: int, count: int) -> None:
        """The content is no longer known (e.g. a write of unknown outcome)."""
        for s in range(lba, lba + count):
            self._sectors.pop(s, None)
            self.written.discard(s)

    def forget_all(self) -> None:
        self._sectors.clear()
        self.written.clear()

    def compare(self, lba: int, data: bytes) -> list[Mismatch]:
        """Mismatches between ``data`` read at ``lba`` and the model; unknown
        sectors are learnt instead of compared."""
        mismatches = []
        for i in range(len(data) // SECTOR):
            sector = bytes(data[i * SECTOR:(i + 1) * SECTOR])
            expected = self._sectors.get(lba + i)
            if expected is None:
                self._sectors[lba + i] = sector
            elif expected != sector:
                mismatches.append(Mismatch(lba + i, expected, sector))
        return mismatches

    def expected(self, lba: int, count: int) -> Optional[bytes]:
        parts = [self._sectors.get(s) for s in range(lba, lba + count)]
        known = [p for p in parts if p is not None]
        return b"".join(known) if len(known) == len(parts) else None
