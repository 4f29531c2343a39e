"""Well-formed Query Config, Mac Mask and Reserve/Release requests, from the
host or from the second initiator's MAC, built with the codec.

``AdminRequests(info)`` makes single requests; ``admin_script(info)`` is a
sequence that walks every CCmd, MCmd and RCmd and the enforcement of a mask
and a reservation against the second MAC, for the tests and for the
stateful engine. Every request that edits a mask or a reservation keeps the
host on it, so nothing here locks the host out.
"""

from __future__ import annotations

import itertools
from typing import Iterable, List, Optional, Sequence

from aoeconform.session import TargetFacts, requests
from aoeconform.wire import AtaArg, ConfigArg, Directive, Frame, MacMaskArg, ReserveArg
from aoeconform.wire.constants import (
    AFLAG_E,
    AFLAG_W,
    ATA_READ_SECTORS_EXT,
    ATA_WRITE_SECTORS_EXT,
    CCMD_FORCE_SET,
    CCMD_READ,
    CCMD_SET,
    CCMD_TEST,
    CCMD_TEST_PREFIX,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    DCMD_ADD,
    DCMD_DELETE,
    MCMD_EDIT,
    MCMD_READ,
    RCMD_FORCE_SET,
    RCMD_READ,
    RCMD_SET,
    SECTOR_SIZE,
)


#: tags of these requests: below the fuzz cases' range (mutate.CASE_TAG_BASE)
ADMIN_TAG_BASE = 0x00001000


class AdminRequests:
    """Request frames to ``info``'s target, each with a fresh tag."""

    def __init__(self, info: TargetFacts, tag_base: int = ADMIN_TAG_BASE):
        self.info = info
        self._tags = itertools.count(tag_base)

    @property
    def second(self) -> bytes:
        return self.info.second_mac

    def _frame(self, command: int, arg, src: Optional[bytes], ver: int = 1, tag: Optional[int] = None) -> bytes:
        head = requests.header(self.info, command, next(self._tags) & 0x7FFFFFFF if tag is None else tag, src)
        head.ver = ver
        return Frame(head, arg).encode(pad=True)

    # -- Query Config (§3.2) -------------------------------------------------------

    def config(self, ccmd: int, string: bytes = b"", *, src: Optional[bytes] = None, length: Optional[int] = None,
               version: int = 1, ver: int = 1, tag: Optional[int] = None) -> bytes:
        """CCmd ``ccmd`` with ``string``; ``length`` lies about it when given."""
        return self._frame(CMD_QUERY_CONFIG, ConfigArg(ccmd=ccmd, config=string, config_length=length, version=version), src, ver, tag)

    def config_read(self, string: bytes = b"", **kw) -> bytes:
        return self.config(CCMD_READ, string, **kw)

    # -- Mac Mask List (§3.3) ----------------------------------------------------------

    def mask_read(self, *, src: Optional[bytes] = None) -> bytes:
        return self._frame(CMD_MAC_MASK, MacMaskArg(mcmd=MCMD_READ), src)

    def mask_edit(self, directives: Sequence[tuple], *, src: Optional[bytes] = None, mcmd: int = MCMD_EDIT,
                  dir_count: Optional[int] = None, ver: int = 1) -> bytes:
        """``directives``: (DCmd, MAC) pairs, applied in order."""
        arg = MacMaskArg(mcmd=mcmd, directives=[Directive(dcmd, mac) for dcmd, mac in directives], dir_count=dir_count)
        return self._frame(CMD_MAC_MASK, arg, src, ver)

    # -- Reserve/Release (§3.4) ----------------------------------------------------------

    def reserve(self, rcmd: int, macs: Iterable[bytes] = (), *, src: Optional[bytes] = None, nmacs: Optional[int] = None,
                ver: int = 1) -> bytes:
        return self._frame(CMD_RESERVE_RELEASE, ReserveArg(rcmd=rcmd, macs=list(macs), nmacs=nmacs), src, ver)

    # -- ATA: what a mask or a reservation must keep out (§3.1) ---------------------------

    def read(self, lba: int, *, src: Optional[bytes] = None) -> bytes:
        return self._frame(CMD_ATA, AtaArg(aflags=AFLAG_E, sector_count=1, cmd_status=ATA_READ_SECTORS_EXT, lba=lba), src)

    def write(self, lba: int, data: bytes, *, src: Optional[bytes] = None) -> bytes:
        data = data[:SECTOR_SIZE].ljust(SECTOR_SIZE, b"\0")
        return self._frame(CMD_ATA, AtaArg(aflags=AFLAG_E | AFLAG_W, sector_count=1, cmd_status=ATA_WRITE_SECTORS_EXT, lba=lba, data=data), src)


def admin_script(info: TargetFacts, lba: int = 0) -> List[bytes]:
    """Every CCmd, MCmd and RCmd, from both MACs, in an order that leaves the
    target as it found it (empty string, list and reservation): what the
    model's tests replay against each quirk, and a clean target must pass.
    Writes go to ``lba`` only."""
    r = AdminRequests(info)
    host, second = info.host_mac, info.second_mac
    frames = [
        # Query Config: every CCmd, matching and not, the bytes kept exactly
        r.config_read(), r.config(CCMD_TEST, b""), r.config(CCMD_TEST_PREFIX, b""),
        r.config(CCMD_SET, b"alpha"), r.config_read(b"other string"), r.config(CCMD_TEST, b"alpha"), r.config(CCMD_TEST, b"alphx"),
        r.config(CCMD_TEST_PREFIX, b"alp"), r.config(CCMD_TEST_PREFIX, b""), r.config(CCMD_TEST_PREFIX, b"beta"),
        r.config(CCMD_SET, b"alpha"), r.config(CCMD_SET, b"beta"), r.config(CCMD_SET, b"beta", src=second),
        r.config(CCMD_FORCE_SET, b"bin\x00ary\xff\x80"), r.config_read(), r.config(7), r.config(0xF, b"x"),
        r.config(CCMD_FORCE_SET, b"stale", length=40), r.config(CCMD_FORCE_SET, b"x" * 4, length=1025),
        r.config_read(version=0), r.config(CCMD_FORCE_SET, b"under ver 2", ver=2), r.config_read(),
        r.config_read() + bytes(8),  # trailing bytes beyond the length field (rule 16)
        r.config(CCMD_FORCE_SET, b""),
        # Mac Mask: add the host, again, fail at a bad DCmd, keep the second MAC out
        r.mask_read(), r.mask_edit([(DCMD_ADD, host)]), r.mask_read(), r.mask_edit([(DCMD_ADD, host), (DCMD_DELETE, second)]),
        r.mask_edit([(DCMD_ADD, host), (3, second)]), r.mask_edit([], mcmd=5), r.mask_read(src=second),
        r.config_read(src=second), r.read(lba, src=second), r.mask_edit([(DCMD_DELETE, host)], src=second),
        r.mask_edit([(DCMD_ADD, host)], dir_count=9), r.mask_edit([(DCMD_DELETE, host)], ver=3),
        r.mask_edit([(DCMD_DELETE, host)]), r.mask_read(), r.mask_read(src=second),
        # Reserve/Release: set, refused to the second MAC, forced by it, released
        r.reserve(RCMD_READ), r.reserve(RCMD_SET, [host]), r.reserve(RCMD_READ),
        r.config(CCMD_FORCE_SET, b"set while reserved"), r.reserve(RCMD_READ), r.config(CCMD_FORCE_SET, b""), r.read(lba, src=second),
        r.write(lba, b"second", src=second), r.read(lba), r.write(lba, b"host"), r.reserve(RCMD_SET, [host, second], src=second),
        r.reserve(RCMD_SET, [host]), r.reserve(RCMD_FORCE_SET, [host, second], src=second), r.read(lba, src=second),
        r.reserve(RCMD_SET, [host], src=second), r.reserve(RCMD_SET, [], src=host), r.reserve(RCMD_READ),
        r.read(lba, src=second), r.reserve(9), r.reserve(RCMD_SET, [host], nmacs=200), r.reserve(RCMD_FORCE_SET, [second], ver=2),
        r.reserve(RCMD_READ), r.config_read(src=second),
    ]
    return frames
