"""Every quirk in docs/quirks.md changes exactly the behaviour it claims.

Each probe runs the same requests against a clean target and against one
with the quirk, and returns an observation; the two must be the values the
table below expects. Runs in memory, no root.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from aoeconform.cli import main
from aoeconform.target.drivers import OTHER_MACS, MemoryDriver
from aoeconform.target.quirks import QUIRKS, READINGS

A, B = OTHER_MACS[0], OTHER_MACS[1]
SECTOR = 512
DOC = Path(__file__).resolve().parent.parent / "docs" / "quirks.md"


def _one(d, frame):
    replies = d.exchange(frame)
    return replies[0] if replies else None


def _err(reply):
    return reply[15] if reply[14] & 0x04 else 0


def _status(reply):
    return reply[27]


def _config(reply):
    return bytes(reply[32:32 + struct.unpack_from("!H", reply, 30)[0]])


def probe_ver(d):
    r = _one(d, d.config(0, ver=2))
    return (r[14] >> 4, _err(r))


def probe_error_echo(d):
    r = _one(d, d.config(0, error=0x55, flags=0x01))
    return (r[14] & 0x03, r[15])


def probe_unpadded(d):
    return len(_one(d, d.mask(0)))


def probe_flush(d):
    return _status(_one(d, d.ata(0xE7, 0, 0)))


def probe_wildcard(d):
    return bytes(_one(d, d.config(0, shelf=0xFFFF, slot=0xFF))[16:19])


def probe_responses(d):
    return len(d.exchange(d.config(0, flags=0x08)))


def probe_shelf(d):
    return len(d.exchange(d.config(0, shelf=7)))


def probe_dst(d):
    return bytes(_one(d, d.config(0, src=A))[0:6])


def probe_tag(d):
    return bytes(_one(d, d.config(0, tag=0x80000001))[20:24])


def probe_unknown(d):
    return len(d.exchange(d.header(0x42) + bytes(36)))


def probe_end(d):
    r = _one(d, d.ata(0x24, d.capacity - 1, 2))
    return (_status(r), len(r))


def probe_lba48(d):
    d.exchange(d.ata(0x34, 3, 1, data=b"\x48" * SECTOR))
    r = _one(d, d.ata(0x24, (1 << 32) | 3, 1))
    return _status(r)


def probe_lba28(d):
    d.exchange(d.ata(0x34, 3, 1, data=b"\x28" * SECTOR))
    return _status(_one(d, d.ata(0x20, 0xE0000003, 1)))


def probe_tag_cache(d):
    d.exchange(d.ata(0x34, 4, 1, data=b"\x01" * SECTOR))
    d.exchange(d.ata(0x24, 4, 1, tag=77))
    d.exchange(d.ata(0x34, 4, 1, data=b"\x02" * SECTOR))
    return _one(d, d.ata(0x24, 4, 1, tag=77))[36]


def probe_stale(d):
    d.exchange(d.ata(0x34, 0, 2, data=b"\xAA" * 1024))
    d.exchange(d.ata(0x24, 0, 2))
    d.exchange(d.ata(0x34, 10, 2, data=b"\xBB" * 1024))
    r = _one(d, d.ata(0x24, 10, 2))
    return (r[36], r[36 + SECTOR])


def probe_async(d):
    d.exchange(d.ata(0x34, 6, 1, aflags=0x43, data=b"\x33" * SECTOR))
    return _one(d, d.ata(0x24, 6, 1))[36]


def probe_config_test(d):
    d.exchange(d.config(4, b"abc"))
    return len(d.exchange(d.config(1, b"xyz")))


def probe_config_prefix(d):
    d.exchange(d.config(4, b"abc"))
    return len(d.exchange(d.config(2, b"b")))


def probe_config_overwrite(d):
    d.exchange(d.config(4, b"abc"))
    r = _one(d, d.config(3, b"xyz"))
    return (_err(r), _config(_one(d, d.config(0))))


def probe_config_equal(d):
    d.exchange(d.config(4, b"abc"))
    return _err(_one(d, d.config(3, b"abc")))


def probe_config_stale(d):
    r = _one(d, d.config(4, b"ab", length=100))
    return (_err(r), len(_config(_one(d, d.config(0)))))


def probe_config_nul(d):
    d.exchange(d.config(4, b"ab\x00cd"))
    return _config(_one(d, d.config(0)))


def probe_mask_enforced(d):
    d.exchange(d.mask(1, [(1, A)], src=A))
    return len(d.exchange(d.config(0, src=B)))


def probe_mask_index(d):
    return _one(d, d.mask(1, [(1, A), (9, B)], src=A))[27]


def probe_reserve_enforced(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _err(_one(d, d.ata(0x24, 0, 1, src=B)))


def probe_reserve_steal(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _err(_one(d, d.reserve(1, [B], src=B)))


def probe_crash(d):
    d.exchange(d.config(0)[:27])
    return len(d.exchange(d.config(0)))


def probe_bufcnt(d):
    return len(d.burst([d.ata(0xE5) for _ in range(16)]))


def probe_short_write(d):
    r = _one(d, d.ata(0x34, 8, 2, data=b"\x23" * 600))
    return (_err(r), d.read_image(8 * SECTOR, 1)[0])


def probe_oversize(d):
    r = _one(d, d.ata(0x24, 0, 5))
    return (_err(r), len(r) > d.mtu + 14)


def probe_identify(d):
    r = _one(d, d.ata(0xEC))
    words = struct.unpack_from("<256H", r, 36)
    return sum(words[100 + i] << (16 * i) for i in range(4)) - d.capacity


def probe_identify_lba28(d):
    words = struct.unpack_from("<256H", _one(d, d.ata(0xEC)), 36)
    return words[60] | words[61] << 16


def probe_identify_lba48_bit(d):
    words = struct.unpack_from("<256H", _one(d, d.ata(0xEC)), 36)
    return (words[83] >> 10 & 1, words[86] >> 10 & 1)


def probe_unsupported(d):
    return _status(_one(d, d.ata(0xB0)))


def probe_power(d):
    return _one(d, d.ata(0xE5))[26]


def probe_readonly(d):
    r = _one(d, d.ata(0x34, 1, 1, data=b"\x32" * SECTOR))
    return (_status(r), d.read_image(SECTOR, 1)[0])


def probe_announce(d):
    return len(d.announcements)


def _alive_after(d, frame):
    """1 when the target still answers a config read after ``frame``, else 0."""
    d.exchange(frame, expect=False)
    return len(d.exchange(d.config(0), expect=False))


def probe_ethertype(d):
    return len(d.exchange(d.config(0, ethertype=b"\x88\xa3"), expect=False))


def probe_command_echo(d):
    return _one(d, d.reserve(0))[19]


def probe_e_flag_echo(d):
    return _one(d, d.config(0, flags=0x04))[14] & 0x04


def probe_slot(d):
    return len(d.exchange(d.config(0, slot=7), expect=False))


def probe_reply_shelf(d):
    return bytes(_one(d, d.config(0))[16:18])


def probe_tag_zero(d):
    return len(d.exchange(d.config(0, tag=0), expect=False))


def probe_unknown_crash(d):
    return _alive_after(d, d.header(0x42) + bytes(36))


def probe_vendor_crash(d):
    return _alive_after(d, d.header(0xF7) + bytes(36))


def probe_runt(d):
    return _alive_after(d, d.config(0)[:20])


def probe_mbz_crash(d):
    return _alive_after(d, d.config(0, flags=0x01))


def probe_lengths_from_frame(d):
    return _config(_one(d, d.config(4, b"short+tail", length=5)))


def probe_trailing(d):
    return _err(_one(d, d.ata(0x24, 0, 1, data=bytes(100))))


def probe_max_sectors(d):
    return _one(d, d.config(0))[28]


def probe_duplicate(d):
    frame = d.ata(0xEC)
    return len(d.burst([frame, frame]))


def probe_overflow(d):
    d.burst([d.config(0) for _ in range(17)])
    return len(d.exchange(d.config(0), expect=False))


def probe_torn(d):
    d.burst([d.ata(0x34, 86, 2, data=b"\xB1" * 1024), d.ata(0x34, 87, 2, data=b"\xB2" * 1024)])
    shared = d.read_image(87 * SECTOR, SECTOR)
    return (shared[0], shared[-1])


def probe_read_status(d):
    return _status(_one(d, d.ata(0x24, 0, 1)))


def probe_write_ignored(d):
    d.exchange(d.ata(0x34, 5, 1, data=b"\x22" * SECTOR))
    return d.read_image(5 * SECTOR, 1)[0]


def probe_scnt_zero(d):
    return _alive_after(d, d.ata(0x24, 0, 0))


def probe_lba48_28(d):
    return _status(_one(d, d.ata(0x24, 1 << 28, 1)))


def probe_identify_scnt(d):
    return len(_one(d, d.ata(0xEC, 0, 0)))


def probe_identify_device(d):
    return _status(_one(d, d.ata(0xEC, 0xA0000000, 1)))


def probe_unsupported_crash(d):
    return _alive_after(d, d.ata(0xB0))


def probe_async_late(d):
    d.exchange(d.ata(0x34, 9, 1, aflags=0x43, data=b"\x01" * SECTOR))
    d.exchange(d.ata(0x34, 9, 1, data=b"\x02" * SECTOR))
    return d.read_image(9 * SECTOR, 1)[0]


def probe_reserved_lba(d):
    return _status(_one(d, d.ata(0x24, 0, 1, reserved=1)))


def probe_version_nibble(d):
    return _err(_one(d, d.config(0, version=0)))


def probe_config_read_echo(d):
    d.exchange(d.config(4, b"abc"))
    return _config(_one(d, d.config(0, b"xyz")))


def probe_force_as_set(d):
    d.exchange(d.config(4, b"abc"))
    return _err(_one(d, d.config(4, b"xyz")))


def probe_ccmd(d):
    return _err(_one(d, d.config(5)))


def probe_ccmd_answered(d):
    return len(d.exchange(d.config(5), expect=False))


def probe_wildcard_answered(d):
    return (len(d.exchange(d.config(0, shelf=0xFFFF), expect=False)), len(d.exchange(d.config(0, slot=0xFF), expect=False)))


def probe_ver_read(d):
    r = _one(d, d.ata(0xEC, ver=2))
    w = _one(d, d.ata(0x34, 3, 1, data=b"\x77" * SECTOR, ver=2))
    return (_err(r), len(r), _err(w), d.read_image(3 * SECTOR, 1)[0])


def probe_truncated(d):
    replies = d.exchange(d.config(0)[:27], expect=False)
    return _err(replies[0]) if replies else None


def probe_bufcnt_exact(d):
    return len(d.burst([d.ata(0xE5) for _ in range(20)]))


def probe_short_write_reply(d):
    r = _one(d, d.ata(0x34, 8, 2, data=b"\x23" * 600))
    return (_err(r), _status(r), r[25], d.read_image(8 * SECTOR, 1)[0])


def probe_oversize_reply(d):
    r = _one(d, d.ata(0x24, 0, 5))
    return (_err(r), _status(r), r[25])


def probe_power_reply(d):
    r = _one(d, d.ata(0xE5))
    return (_status(r), r[25])


def probe_flush_reply(d):
    r = _one(d, d.ata(0xE7, 0, 0))
    return (_status(r), r[25])


def probe_async_reply(d):
    replies = d.exchange(d.ata(0x34, 6, 1, aflags=0x43, data=b"\x33" * SECTOR), expect=False)
    return (len(replies), _one(d, d.ata(0x24, 6, 1))[36])


def probe_ata_reserved(d):
    frame = bytearray(d.ata(0x24, 6, 1))
    frame[34:36] = b"\xff\xff"
    return _err(_one(d, bytes(frame)))


def probe_config_oversize_reply(d):
    return len(d.exchange(d.config(4, b"x", length=2000), expect=False))


def probe_identify_reserved(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _err(_one(d, d.ata(0xEC, src=B)))


def probe_config_overflow(d):
    return _alive_after(d, d.config(4, b"x", length=2000))


def probe_config_text(d):
    d.exchange(d.config(4, b"\x80\xff"))
    return _config(_one(d, d.config(0)))


def probe_prefix_empty(d):
    d.exchange(d.config(4, b"abc"))
    return len(d.exchange(d.config(2, b""), expect=False))


def probe_config_torn(d):
    d.burst([d.config(4, b"longer-string"), d.config(4, b"short")])
    return _config(_one(d, d.config(0)))


def probe_mask_count(d):
    return _one(d, d.mask(0))[27]


def probe_mask_dups(d):
    return _one(d, d.mask(1, [(1, A), (1, A)], src=A))[27]


def probe_mask_delete(d):
    d.exchange(d.mask(1, [(1, A)], src=A))
    return _alive_after(d, d.mask(1, [(2, A)], src=A))


def probe_mcmd(d):
    return _err(_one(d, d.mask(5)))


def probe_dircount(d):
    r = _one(d, d.mask(1, [(1, A)], count=20, src=A))
    return (_err(r), len(d.target.mask))


def probe_reserve_count(d):
    return _one(d, d.reserve(0))[25]


def probe_reserve_holder_set(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _err(_one(d, d.reserve(1, [A], src=A)))


def probe_reserve_force(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _err(_one(d, d.reserve(2, [B], src=B)))


def probe_reserve_release(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _one(d, d.reserve(2, [], src=A))[25]


def probe_reserve_holder_io(d):
    d.exchange(d.reserve(1, [A], src=A))
    return _err(_one(d, d.ata(0x24, 0, 1, src=A)))


def probe_reserve_silent(d):
    d.exchange(d.reserve(1, [A], src=A))
    return len(d.exchange(d.ata(0xEC, src=B), expect=False))


def probe_rcmd_crash(d):
    return _alive_after(d, d.reserve(9))


def probe_nmacs(d):
    return _err(_one(d, d.reserve(1, [A], nmacs=20, src=A)))


def probe_reserve_after_config_set(d):
    d.exchange(d.reserve(1, [A], src=A))
    d.exchange(d.config(4, b"new string", src=A))
    return (_one(d, d.reserve(0, src=A))[25], _err(_one(d, d.ata(0x24, 0, 1, src=B))))


def probe_write_after_read(d):
    d.exchange(d.ata(0x34, 11, 1, data=b"\x5a" * SECTOR))
    first = _one(d, d.ata(0x24, 11, 1))[36]
    second = _one(d, d.ata(0x24, 11, 1))[36]
    return (first, second)


#: quirk: (probe, start options, clean observation, quirky observation)
CASES = {
    "ver-unchecked": (probe_ver, {}, (1, 5), (2, 0)),
    "error-byte-echo": (probe_error_echo, {}, (0, 0), (1, 0x55)),
    "unpadded": (probe_unpadded, {}, 60, 28),
    "flush-status-zero": (probe_flush, {}, 0x40, 0x00),
    "wildcard-reply-address": (probe_wildcard, {}, b"\x00\x01\x02", b"\xff\xff\xff"),
    "answers-responses": (probe_responses, {}, 0, 1),
    "wrong-shelf": (probe_shelf, {}, 0, 1),
    "wrong-reply-dst": (probe_dst, {}, A, b"\xff" * 6),
    "tag-bit31-cleared": (probe_tag, {}, b"\x80\x00\x00\x01", b"\x00\x00\x00\x01"),
    "unknown-command-silent": (probe_unknown, {}, 1, 0),
    "off-by-one-end": (probe_end, {}, (0x41, 60), (0x40, 36 + 2 * SECTOR)),
    "lba48-truncated": (probe_lba48, {}, 0x41, 0x40),
    "lba28-device-bits": (probe_lba28, {}, 0x40, 0x41),
    "tag-reply-cache": (probe_tag_cache, {}, 2, 1),
    "stale-read-buffer": (probe_stale, {}, (0xBB, 0xBB), (0xBB, 0x00)),
    "async-write-lost": (probe_async, {}, 0x33, 0),
    "config-test-mismatch": (probe_config_test, {}, 0, 1),
    "config-prefix-mismatch": (probe_config_prefix, {}, 0, 1),
    "config-set-overwrites": (probe_config_overwrite, {}, (4, b"abc"), (0, b"xyz")),
    "config-stale-bytes": (probe_config_stale, {}, (2, 0), (0, 100)),
    "config-nul-truncate": (probe_config_nul, {}, b"ab\x00cd", b"ab"),
    "mask-not-enforced": (probe_mask_enforced, {}, 0, 1),
    "mask-wrong-index": (probe_mask_index, {}, 1, 2),
    "reserve-not-enforced": (probe_reserve_enforced, {}, 6, 0),
    "reserve-set-steals": (probe_reserve_steal, {}, 6, 0),
    "crash-on-truncated": (probe_crash, {}, 1, 0),
    "bufcnt-overstated": (probe_bufcnt, {}, 16, 8),
    "short-write-partial": (probe_short_write, {}, (2, 0), (0, 0x23)),
    "oversize-scnt-accepted": (probe_oversize, {}, (2, False), (0, True)),
    "identify-capacity-mismatch": (probe_identify, {}, 0, 1),
    "identify-lba28-words-zero": (probe_identify_lba28, {}, 16384, 0),
    "identify-lba48-bit-missing": (probe_identify_lba48_bit, {}, (1, 1), (0, 0)),
    "unsupported-opcode-success": (probe_unsupported, {}, 0x41, 0x40),
    "check-power-wrong": (probe_power, {}, 0xFF, 0),
    "readonly-writes": (probe_readonly, {"readonly": True}, (0x41, 0), (0x40, 0x32)),
    "no-advertisement": (probe_announce, {}, 1, 0),
    "any-ethertype": (probe_ethertype, {}, 0, 1),
    "command-not-echoed": (probe_command_echo, {}, 3, 2),
    "error-flag-echo": (probe_e_flag_echo, {}, 0, 0x04),
    "wrong-slot": (probe_slot, {}, 0, 1),
    "reply-shelf-little-endian": (probe_reply_shelf, {}, b"\x00\x01", b"\x01\x00"),
    "tag-zero-silent": (probe_tag_zero, {}, 1, 0),
    "unknown-command-crash": (probe_unknown_crash, {}, 1, 0),
    "vendor-crash": (probe_vendor_crash, {}, 1, 0),
    "crash-on-runt": (probe_runt, {}, 1, 0),
    "mbz-crash": (probe_mbz_crash, {}, 1, 0),
    "lengths-from-frame": (probe_lengths_from_frame, {}, b"short", b"short+tail"),
    "trailing-bytes-rejected": (probe_trailing, {}, 0, 2),
    "max-sectors-overstated": (probe_max_sectors, {}, 2, 3),
    "duplicate-request-dropped": (probe_duplicate, {}, 2, 1),
    "overflow-crash": (probe_overflow, {}, 1, 0),
    "torn-overlapping-writes": (probe_torn, {}, (0xB2, 0xB2), (0xB2, 0xB1)),
    "read-status-drq": (probe_read_status, {}, 0x40, 0x48),
    "write-ignored": (probe_write_ignored, {}, 0x22, 0),
    "scnt-zero-crash": (probe_scnt_zero, {}, 1, 0),
    "lba48-limited-to-28-bits": (probe_lba48_28, {"image_bytes": ((1 << 28) + 16) * SECTOR}, 0x40, 0x41),
    "identify-scnt-zero-empty": (probe_identify_scnt, {}, 36 + SECTOR, 60),
    "identify-device-bits-rejected": (probe_identify_device, {}, 0x40, 0x41),
    "unsupported-opcode-crash": (probe_unsupported_crash, {}, 1, 0),
    "async-write-applied-late": (probe_async_late, {}, 2, 1),
    "ata-reserved-as-lba": (probe_reserved_lba, {}, 0x40, 0x41),
    "config-version-nibble-required": (probe_version_nibble, {}, 0, 2),
    "config-read-echoes-request": (probe_config_read_echo, {}, b"abc", b"xyz"),
    "config-force-as-set": (probe_force_as_set, {}, 0, 4),
    "config-ccmd-unchecked": (probe_ccmd, {}, 2, 0),
    "config-ccmd-silent": (probe_ccmd_answered, {}, 1, 0),
    "wildcard-silent": (probe_wildcard_answered, {}, (1, 1), (0, 0)),
    "config-oversize-overflow": (probe_config_overflow, {}, 1, 0),
    "config-text-only": (probe_config_text, {}, b"\x80\xff", b"??"),
    "config-prefix-empty-silent": (probe_prefix_empty, {}, 1, 0),
    "config-torn-set": (probe_config_torn, {}, b"short", b"shortr-string"),
    "mask-dircount-overstated": (probe_mask_count, {}, 0, 1),
    "mask-duplicate-entries": (probe_mask_dups, {}, 1, 2),
    "mask-delete-crash": (probe_mask_delete, {}, 1, 0),
    "mask-mcmd-unchecked": (probe_mcmd, {}, 2, 0),
    "mask-dircount-unchecked": (probe_dircount, {}, (2, 0), (0, 1)),
    "reserve-nmacs-overstated": (probe_reserve_count, {}, 0, 1),
    "reserve-set-refuses-holder": (probe_reserve_holder_set, {}, 0, 6),
    "reserve-force-refused": (probe_reserve_force, {}, 0, 6),
    "reserve-release-ignored": (probe_reserve_release, {}, 0, 1),
    "reserve-locks-out-holder": (probe_reserve_holder_io, {}, 0, 6),
    "reserve-silent-to-others": (probe_reserve_silent, {}, 1, 0),
    "reserve-rcmd-crash": (probe_rcmd_crash, {}, 1, 0),
    "reserve-nmacs-unchecked": (probe_nmacs, {}, 2, 0),
    "reserve-forgotten-on-config-set": (probe_reserve_after_config_set, {}, (1, 6), (0, 0)),
    "write-applied-after-read": (probe_write_after_read, {}, (0x5A, 0x5A), (0, 0x5A)),
}


#: reading: (probe, start options, clean observation, observation with the reading)
READING_CASES = {
    "ver-other-served-readonly": (probe_ver_read, {}, (5, 60, 5, 0), (0, 36 + SECTOR, 5, 0)),
    "truncated-silent": (probe_truncated, {}, 2, None),
    "truncated-error-1": (probe_truncated, {}, 2, 1),
    "bufcnt-exact": (probe_bufcnt_exact, {}, 20, 16),
    "short-write-abrt": (probe_short_write_reply, {}, (2, 0x34, 0, 0), (0, 0x41, 0x04, 0)),
    "oversize-scnt-abrt": (probe_oversize_reply, {}, (2, 0x24, 0), (0, 0x41, 0x04)),
    "check-power-unsupported": (probe_power_reply, {}, (0x40, 0), (0x41, 0x04)),
    "flush-unsupported": (probe_flush_reply, {}, (0x40, 0), (0x41, 0x04)),
    "async-write-no-reply": (probe_async_reply, {}, (1, 0x33), (0, 0x33)),
    "ata-reserved-error-2": (probe_ata_reserved, {}, 0, 2),
    "config-set-equal-error": (probe_config_equal, {}, 0, 4),
    "config-ccmd-error-1": (probe_ccmd, {}, 2, 1),
    "config-oversize-silent": (probe_config_oversize_reply, {}, 1, 0),
    "identify-reserved-refused": (probe_identify_reserved, {}, 0, 6),
}


def _documented(heading: str) -> set[str]:
    """Names in the table under ``heading`` in docs/quirks.md."""
    text = DOC.read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| ([a-z0-9-]+) \|", text, re.M)) - {"quirk", "reading"}


def test_every_quirk_has_a_probe_and_a_doc_row():
    assert set(CASES) == set(QUIRKS)
    assert _documented("| quirk |") == set(QUIRKS)


def test_every_reading_has_a_probe_and_a_doc_row():
    assert set(READING_CASES) == set(READINGS)
    assert _documented("## Accepted readings") == set(READINGS)
    assert not set(READINGS) & set(QUIRKS)


@pytest.mark.parametrize("name", sorted(QUIRKS) + sorted(READINGS))
def test_quirk_or_reading_changes_what_it_claims(name, tmp_path):
    probe, options, clean_expected, changed_expected = CASES.get(name) or READING_CASES[name]
    d = MemoryDriver(str(tmp_path))
    try:
        d.start(**options)
        assert probe(d) == clean_expected, "clean target"
        d.start(quirks=[name], **options)
        assert probe(d) == changed_expected, f"with {name}"
    finally:
        d.stop()


def test_list_quirks_cli(capsys):
    assert main(["target", "--list-quirks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(QUIRKS)
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_unknown_quirk_is_a_usage_error(capsys):
    assert main(["target", "mem:1M", "--iface", "lo", "--shelf", "1", "--slot", "2", "--quirk", "nope"]) == 2
    assert "unknown quirk" in capsys.readouterr().err
