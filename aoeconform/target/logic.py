"""The reference target's protocol logic: request frame in, reply frames out.

No sockets and no clocks. ``Target.handle(frame)`` takes one whole Ethernet
frame (bytes) and returns the list of frames to send back (usually one,
often none). The state it changes (config string, Mac Mask list,
reservation, the image, a pending asynchronous write) lives in the
``Target`` object, so the same logic runs in a unit test, over a veth pair
and over a real NIC; ``step(target, frame)`` gives the (state, replies)
shape. ``Target.process`` is the allocation-free variant the server uses:
its replies are views of one reply buffer, valid until the next call.

Choices where the protocol notes leave room (§10), all deterministic:

* 28- or 48-bit addressing is chosen by opcode, not by the E flag (rule 27);
  the opcode also decides read or write, W is not consulted.
* A frame too short for its command's fixed argument gets E=1 Error 2
  (rule 15); so does an ATA sector count above the advertised maximum and a
  write whose payload is short (rules 23, 24), a Config String Length over
  1024 or beyond the frame (42), a Dir Count or NMacs beyond the frame (53,
  58). Nothing is changed in any of these cases.
* Ver other than 1 gets E=1 Error 5 and no side effect (rule 12).
* While reserved, READ and WRITE (0x20, 0x24, 0x30, 0x34) from MACs outside
  the reservation get E=1 Error 6; IDENTIFY, CHECK POWER MODE and FLUSH stay
  available to everyone, as do config, mask and reserve-read (rule 57).
* A write with the A flag is acknowledged at once and applied before the
  next request is looked at (or when the server finds its queue empty).
* The Mac Mask list holds up to 255 entries, fewer when the whole list
  would not fit one reply at the link MTU ((MTU - 28) // 8: 184 at 1500).
* The sector count in an ATA reply is 0 on success (nothing remaining) and
  the request's count on failure; the LBA and AFlags (MBZ bits cleared) are
  echoed.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Iterable, Optional

from aoeconform.errors import UsageError
from aoeconform.wire.constants import (
    AOE_HEADER_LEN,
    ATA_HEADER_END,
    BROADCAST_MAC,
    CONFIG_HEADER_END,
    CONFIG_STRING_MAX,
    ETH_MIN_FRAME,
    ETH_P_AOE,
    LBA28_MAX_SECTORS,
    SECTOR_SIZE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
    sectors_per_frame,
)
from aoeconform.wire.identify import IdentifyData

from .quirks import check_quirks

#: Firmware Version in config replies: aoeconform 0.1
FIRMWARE_VERSION = 0x0001
DEFAULT_BUFCNT = 16
MODEL = "aoeconform reference target"
FIRMWARE_TEXT = "0.1"
MASK_LIST_MAX = 255  # Dir Count is one byte
MASK_REPLY_HEAD = AOE_HEADER_LEN + 4
RESERVE_HEAD = AOE_HEADER_LEN + 2

# Flags byte: Ver 1 in the high nibble, R, E
VER1 = 0x10
FLAG_R = 0x08
FLAG_E = 0x04
FLAGS_MBZ = 0x03
AFLAGS_DEFINED = 0x53  # E, D, A, W

# Opcodes (ATA/ATAPI-6)
READ28, READ48, WRITE28, WRITE48 = 0x20, 0x24, 0x30, 0x34
CHECK_POWER_MODE, FLUSH_CACHE, FLUSH_CACHE_EXT, IDENTIFY = 0xE5, 0xE7, 0xEA, 0xEC
STATUS_OK, STATUS_ERR, STATUS_FLUSH_QUIRK, STATUS_READ_DRQ = 0x40, 0x41, 0x00, 0x48
ERR_ABRT, ERR_IDNF = 0x04, 0x10
POWER_ACTIVE = 0xFF
AFLAG_ASYNC = 0x02

# AoE error codes (§2.4)
E_UNKNOWN_COMMAND, E_BAD_ARG, E_CONFIG_PRESENT, E_VERSION, E_RESERVED = 1, 2, 4, 5, 6

# ethertype, ver/flags, error, major, minor, command, tag at frame offset 12
REQUEST_HEADER = struct.Struct("!HBBHBBI")
# ver/flags, error, major, minor, command, tag at frame offset 14
REPLY_HEADER = struct.Struct("!BBHBBI")
# aflags, err/feature, sector count, cmd/status, lba 0-31, lba 32-47 (LBA is little-endian)
ATA_REQUEST = struct.Struct("<BBBBIH")
ATA_REPLY = struct.Struct("<BBBBIHH")
CONFIG_FIELDS = struct.Struct("!HHBBH")
# The hot path reads header and ATA argument in one little-endian unpack:
# EtherType and shelf come out byte-swapped and are compared as such, and
# tag and shelf go back out through the same byte order unchanged.
FAST_REQUEST = struct.Struct("<12xHBBHBBIBBBBIH")
FAST_REPLY = struct.Struct("<BBHBBIBBBBIHH")
ETH_P_AOE_SWAPPED = 0xA288
AOE_TYPE = ETH_P_AOE.to_bytes(2, "big")

_NO_REPLY: tuple = ()
ZERO_MAC = bytes(6)

#: quirks after which the target stops answering anything (``Target.dead``)
CRASH_QUIRKS = frozenset({
    "crash-on-truncated", "crash-on-runt", "vendor-crash", "mbz-crash", "overflow-crash", "scnt-zero-crash",
    "unsupported-opcode-crash", "config-oversize-overflow", "mask-delete-crash", "reserve-rcmd-crash", "unknown-command-crash",
})
KNOWN_OPCODES = frozenset({0x20, 0x24, 0x30, 0x34, 0xE5, 0xE7, 0xEA, 0xEC})


class Target:
    """One exported image at shelf.slot, behind MAC ``mac`` on a link of ``mtu``."""

    def __init__(
        self,
        image,
        *,
        shelf: int,
        slot: int,
        mac: bytes,
        mtu: int = 1500,
        bufcnt: int = DEFAULT_BUFCNT,
        readonly: bool = False,
        config: bytes = b"",
        mask: Iterable[bytes] = (),
        quirks: Iterable[str] = (),
        hostname: str = "",
    ) -> None:
        if not 0 <= shelf < SHELF_BROADCAST:
            raise UsageError(f"shelf {shelf} is out of range; use 0 to {SHELF_BROADCAST - 1} (0xFFFF is the wildcard)")
        if not 0 <= slot < SLOT_BROADCAST:
            raise UsageError(f"slot {slot} is out of range; use 0 to {SLOT_BROADCAST - 1} (0xFF is the wildcard)")
        if not 1 <= bufcnt <= 0xFFFF:
            raise UsageError(f"buffer count {bufcnt} is out of range; use 1 to 65535")
        if len(config) > CONFIG_STRING_MAX:
            raise UsageError(f"the config string is {len(config)} bytes; the protocol allows at most {CONFIG_STRING_MAX}")
        max_sectors = min(sectors_per_frame(mtu), 0xFF)
        if max_sectors < 1:
            raise UsageError(f"MTU {mtu} cannot carry one 512-byte sector per frame; raise it to at least {ATA_HEADER_END + SECTOR_SIZE}")
        self.image = image
        self.shelf, self.slot, self.mac, self.mtu = shelf, slot, bytes(mac), mtu
        self.bufcnt = bufcnt
        self.readonly = readonly
        self.quirks = check_quirks(quirks)
        self.max_sectors = max_sectors
        self.capacity = image.size // SECTOR_SIZE  # sectors
        self.max_frame = mtu + 14  # whole frame without FCS (rule 17)
        self.mask_capacity = min(MASK_LIST_MAX, (mtu - MASK_REPLY_HEAD) // 8)

        # state
        self.config = bytes(config)
        self._mask: list[bytes] = []
        self._mask_set: set[bytes] = set()
        for mac_entry in mask:
            if bytes(mac_entry) not in self._mask_set:
                self._mask.append(bytes(mac_entry))
                self._mask_set.add(bytes(mac_entry))
        if len(self._mask) > self.mask_capacity:
            raise UsageError(f"{len(self._mask)} masked MACs given; at MTU {mtu} the list holds {self.mask_capacity}")
        self._reservation: list[bytes] = []
        self._reserved_set: set[bytes] = set()
        self._pending: Optional[tuple] = None  # (data, offset) of an acknowledged async write
        self.dead = False  # crash-on-truncated

        q = self.quirks
        self._quirky_config = bool(q & {"config-test-mismatch", "config-prefix-mismatch", "config-set-overwrites", "config-set-equal-error", "config-stale-bytes", "config-nul-truncate",
                                        "config-version-nibble-required", "config-read-echoes-request", "config-force-as-set", "config-ccmd-unchecked", "config-text-only",
                                        "config-prefix-empty-silent", "config-torn-set", "lengths-from-frame", "trailing-bytes-rejected", "config-oversize-overflow",
                                        "config-ccmd-silent", "config-ccmd-error-1", "config-oversize-silent",
                                        "reserve-forgotten-on-config-set"})
        self._ignore_flags = 0 if "answers-responses" in q else FLAG_R
        self._any_shelf = "wrong-shelf" in q
        self._wild_silent = "wildcard-silent" in q
        self._check_version = "ver-unchecked" not in q
        self._ver_from_request = "ver-unchecked" in q
        self._echo_error = "error-byte-echo" in q
        self._wild_reply = "wildcard-reply-address" in q
        self._broadcast_reply = "wrong-reply-dst" in q
        self._tag_mask = 0x7FFFFFFF if "tag-bit31-cleared" in q else 0xFFFFFFFF
        self._pad_to = 0 if "unpadded" in q else ETH_MIN_FRAME
        self._unknown_silent = "unknown-command-silent" in q
        self._end = self.capacity + (1 if "off-by-one-end" in q else 0)
        self._lba48_mask = 0xFFFFFFFF if "lba48-truncated" in q else 0xFFFFFFFFFFFF
        self._lba28_mask = 0xFFFFFFFF if "lba28-device-bits" in q else LBA28_MAX_SECTORS
        self._stale_read = "stale-read-buffer" in q
        self._async_lost = "async-write-lost" in q
        self._mask_enforced = "mask-not-enforced" not in q
        self._reserve_enforced = "reserve-not-enforced" not in q
        self._short_write_ok = "short-write-partial" in q
        self._scnt_limit = 0xFF if "oversize-scnt-accepted" in q else max_sectors
        self._write_protected = readonly and "readonly-writes" not in q
        self._flush_status = STATUS_FLUSH_QUIRK if "flush-status-zero" in q else STATUS_OK
        self._unsupported_result = (STATUS_OK, 0) if "unsupported-opcode-success" in q else (STATUS_ERR, ERR_ABRT)
        self._power_scnt = 0 if "check-power-wrong" in q else POWER_ACTIVE
        self._burst_limit = bufcnt // 2 if "bufcnt-overstated" in q else bufcnt if "bufcnt-exact" in q else None
        # readings (quirks.READINGS): other conforming answers where a rule allows several
        self._ver_readonly = "ver-other-served-readonly" in q
        self._truncated_code = None if "truncated-silent" in q else E_UNKNOWN_COMMAND if "truncated-error-1" in q else E_BAD_ARG
        self._refuse_by_abrt = {name for name in ("short-write-abrt", "oversize-scnt-abrt") if name in q}
        self._power_supported = "check-power-unsupported" not in q
        self._flush_supported = "flush-unsupported" not in q
        self._async_silent = "async-write-no-reply" in q
        self._reserved_checked = "ata-reserved-error-2" in q
        self._identify_reserved = "identify-reserved-refused" in q
        self._any_ethertype = "any-ethertype" in q
        self._any_slot = "wrong-slot" in q
        self._echo_flags = FLAG_E if "error-flag-echo" in q else 0
        self._reply_shelf = int.from_bytes(shelf.to_bytes(2, "big"), "little") if "reply-shelf-little-endian" in q else shelf
        self._reserve_command = 2 if "command-not-echoed" in q else 3
        self._read_status = STATUS_READ_DRQ if "read-status-drq" in q else STATUS_OK
        self._zero_crash = "scnt-zero-crash" in q
        self._end48 = min(self._end, 1 << 28) if "lba48-limited-to-28-bits" in q else self._end
        self._reserved_lba = "ata-reserved-as-lba" in q
        self._identify_scnt = "identify-scnt-zero-empty" in q
        self._identify_strict = "identify-device-bits-rejected" in q
        self._unsupported_crash = "unsupported-opcode-crash" in q
        self._from_frame = "lengths-from-frame" in q
        self._trailing_rejected = "trailing-bytes-rejected" in q
        self._mask_extra = 1 if "mask-dircount-overstated" in q else 0
        self._mask_dups = "mask-duplicate-entries" in q
        self._delete_crash = "mask-delete-crash" in q
        self._mcmd_unchecked = "mask-mcmd-unchecked" in q
        self._dircount_unchecked = "mask-dircount-unchecked" in q
        self._reserve_extra = 1 if "reserve-nmacs-overstated" in q else 0
        self._set_refuses_holder = "reserve-set-refuses-holder" in q
        self._force_checked = "reserve-force-refused" in q
        self._release_ignored = "reserve-release-ignored" in q
        self._locks_holder = "reserve-locks-out-holder" in q
        self._rcmd_crash = "reserve-rcmd-crash" in q
        self._nmacs_unchecked = "reserve-nmacs-unchecked" in q
        self._late_async = "async-write-applied-late" in q
        self._late: Optional[tuple] = None
        self._torn: list = []  # torn-overlapping-writes: the later halves, applied in reverse
        self._burst_base = self.config  # config-torn-set: the string before the current burst
        self._burst_sets = 0
        # write-applied-after-read: sector -> data acknowledged but not yet on the media
        self._held: dict[int, bytes] = {}
        # how a synchronous write reaches the media, chosen once
        if "write-ignored" in q:
            self._write_now = lambda data, offset: None
        elif "write-applied-after-read" in q:
            self._write_now = self._hold_write
        elif "torn-overlapping-writes" in q:
            self._write_now = self._tear_write
        else:
            self._write_now = image.write
        # the sector count advertised in config replies (rule 17)
        self._advertised_sectors = max_sectors + 1 if "max-sectors-overstated" in q else max_sectors
        if "max-sectors-overstated" in q:
            self._scnt_limit = max(self._scnt_limit, max_sectors + 1)

        reported = self.capacity + (1 if "identify-capacity-mismatch" in q else 0)
        serial = f"{shelf}.{slot}" + (f":{hostname}" if hostname else "")
        identify = IdentifyData.build(reported, model=MODEL, serial=serial[:20], firmware=FIRMWARE_TEXT)
        if "identify-lba28-words-zero" in q:
            identify.lba28_capacity = 0
        if "identify-lba48-bit-missing" in q:
            identify.words[83] &= ~(1 << 10)
            identify.words[86] &= ~(1 << 10)
        self._identify = identify.encode()

        # One reply buffer, reused: the header fields that never change are
        # written once. Big enough for the largest read a quirk may serve.
        size = max(self.max_frame, ATA_HEADER_END + self._scnt_limit * SECTOR_SIZE, CONFIG_HEADER_END + CONFIG_STRING_MAX, ETH_MIN_FRAME)
        self._reply = bytearray(size)
        self._reply[6:12] = self.mac
        self._reply[12:14] = ETH_P_AOE.to_bytes(2, "big")
        self._view = memoryview(self._reply)

        # The hot path (plain READ/WRITE EXT, no quirks) and its byte-swapped keys
        self._fast = not self.quirks
        self._shelf_swapped = int.from_bytes(shelf.to_bytes(2, "big"), "little")
        self._restricted = bool(self._mask)
        self._writable = not readonly

        # Quirks that wrap the whole request path are chosen here, once.
        process = self._process
        if "async-write-applied-late" in q:
            process = self._wrap_late_async(process)
        if "torn-overlapping-writes" in q:
            process = self._wrap_torn(process)
        if "config-torn-set" in q:
            process = self._wrap_config_burst(process)
        if "reserve-silent-to-others" in q:
            process = self._wrap_reserve_silent(process)
        if "duplicate-request-dropped" in q:
            process = self._wrap_duplicates(process)
        if self._burst_limit is not None:
            process = self._wrap_burst(process)
        if "tag-reply-cache" in q:
            process = self._wrap_tag_cache(process)
        if "crash-on-truncated" in q:
            process = self._wrap_crash(process)
        if "tag-zero-silent" in q:
            process = self._wrap_tag_zero(process)
        if q & CRASH_QUIRKS:
            process = self._wrap_dead(process, q)
        self.process = process

    # -- public -------------------------------------------------------------

    def handle(self, frame: bytes, burst_index: int = 0) -> list[bytes]:
        """The replies to one request frame, as independent bytes objects.

        ``burst_index`` is the frame's position in a run of requests that
        arrived back to back (0 when the queue was empty); only the
        bufcnt-overstated quirk looks at it."""
        return [bytes(r) for r in self.process(bytes(frame), burst_index)]

    def announce(self) -> list[bytes]:
        """The unsolicited config replies sent at start-up (rule 46): broadcast,
        or one per masked MAC when a mask list exists."""
        if "no-advertisement" in self.quirks:
            return []
        body = self._config_body(0)
        frames = []
        for dst in self._mask or [BROADCAST_MAC]:
            head = dst + self.mac + ETH_P_AOE.to_bytes(2, "big") + REPLY_HEADER.pack(VER1 | FLAG_R, 0, self._reply_shelf, self.slot, 1, 0)
            frames.append(self._padded(head + body))
        return frames

    @property
    def mask(self) -> list[bytes]:
        return list(self._mask)

    @property
    def reservation(self) -> list[bytes]:
        return list(self._reservation)

    @property
    def pending_write(self) -> bool:
        return self._pending is not None

    def complete_pending(self) -> None:
        """Apply an acknowledged asynchronous write now (and, with
        torn-overlapping-writes, the halves still held back)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.image.write(pending[0], pending[1])
        if self._torn:
            self._apply_torn()

    def close(self) -> None:
        self.complete_pending()
        if self._held:
            self._release_held(0, max(self._held) + 1)
        late, self._late = self._late, None
        if late is not None:
            self.image.write(late[0], late[1])

    # -- the request path ------------------------------------------------------

    def _process(self, frame, burst_index=0):
        if self._pending is not None:
            self.complete_pending()
        n = len(frame)
        if self._fast and n >= ATA_HEADER_END:
            # READ EXT and WRITE EXT from an unrestricted initiator to our own
            # address, inside the image: the same reply the general path
            # below builds, with fewer steps. Anything else falls through.
            (ethertype, verflags, _error, shelf, slot, command, tag,
             aflags, _feature, scnt, opcode, lba_low, lba_high) = FAST_REQUEST.unpack_from(frame)
            if (
                ethertype == ETH_P_AOE_SWAPPED and verflags == VER1 and command == 0
                and shelf == self._shelf_swapped and slot == self.slot
                and scnt <= self.max_sectors and not self._restricted and frame[0:6] == self.mac
            ):
                lba = lba_low | lba_high << 32
                if lba + scnt <= self.capacity:
                    if opcode == READ48:
                        reply = self._reply
                        reply[0:6] = frame[6:12]
                        FAST_REPLY.pack_into(reply, 14, VER1 | FLAG_R, 0, shelf, slot, 0, tag, aflags & AFLAGS_DEFINED, 0, 0, STATUS_OK, lba_low, lba_high, 0)
                        end = ATA_HEADER_END + (scnt << 9)
                        self.image.readinto(self._view[ATA_HEADER_END:end], lba << 9)
                        return self._finish(end) if end < ETH_MIN_FRAME else (self._view[:end],)
                    if opcode == WRITE48 and self._writable and not aflags & AFLAG_ASYNC and n - ATA_HEADER_END >= scnt << 9:
                        if scnt:
                            self.image.write(memoryview(frame)[ATA_HEADER_END:ATA_HEADER_END + (scnt << 9)], lba << 9)
                        reply = self._reply
                        reply[0:6] = frame[6:12]
                        FAST_REPLY.pack_into(reply, 14, VER1 | FLAG_R, 0, shelf, slot, 0, tag, aflags & AFLAGS_DEFINED, 0, 0, STATUS_OK, lba_low, lba_high, 0)
                        return self._finish(ATA_HEADER_END)
        if n < AOE_HEADER_LEN:
            return _NO_REPLY
        ethertype, verflags, error, shelf, slot, command, tag = REQUEST_HEADER.unpack_from(frame, 12)
        # rules 1, 2, 10
        if (ethertype != ETH_P_AOE and not self._any_ethertype) or verflags & self._ignore_flags:
            return _NO_REPLY
        if shelf != self.shelf and shelf != SHELF_BROADCAST and not self._any_shelf:
            return _NO_REPLY
        if slot != self.slot and slot != SLOT_BROADCAST and not self._any_slot:
            return _NO_REPLY
        if self._wild_silent and (shelf == SHELF_BROADCAST or slot == SLOT_BROADCAST):
            return _NO_REPLY
        if not frame[0] & 1 and frame[0:6] != self.mac:
            return _NO_REPLY  # another station's unicast seen on a shared link
        # rule 51: a non-empty mask list silences everyone else
        if self._mask_set and frame[6:12] not in self._mask_set and self._mask_enforced:
            return _NO_REPLY
        if verflags >> 4 != 1 and self._check_version and not (self._ver_readonly and _read_only(frame, n, command)):
            return self._error(frame, n, verflags, error, shelf, slot, command, tag, E_VERSION, 0)
        if command == 0:
            return self._ata(frame, n, verflags, error, shelf, slot, tag)
        if command == 1:
            return self._query_config(frame, n, verflags, error, shelf, slot, tag)
        if command == 2:
            return self._mac_mask(frame, n, verflags, error, shelf, slot, tag)
        if command == 3:
            return self._reserve(frame, n, verflags, error, shelf, slot, tag)
        if self._unknown_silent:
            return _NO_REPLY
        return self._error(frame, n, verflags, error, shelf, slot, command, tag, E_UNKNOWN_COMMAND, 0)

    def _header(self, frame, verflags, error, shelf, slot, command, tag, code):
        """Write the reply's Ethernet and AoE header; ``code`` is the AoE error (0: none)."""
        reply = self._reply
        reply[0:6] = BROADCAST_MAC if self._broadcast_reply else frame[6:12]
        version = verflags & 0xF0 if self._ver_from_request else VER1
        if code:
            flags, error = version | FLAG_R | FLAG_E, code
        elif self._echo_error:
            flags = version | FLAG_R | (verflags & FLAGS_MBZ)
        else:
            flags, error = version | FLAG_R | (verflags & self._echo_flags), 0
        if not self._wild_reply:
            shelf, slot = self._reply_shelf, self.slot
        REPLY_HEADER.pack_into(reply, 14, flags, error, shelf, slot, command, tag & self._tag_mask)

    def _finish(self, length):
        """The reply of ``length`` bytes, padded with zeros to the Ethernet minimum (rule 16)."""
        if length < self._pad_to:
            self._reply[length:self._pad_to] = bytes(self._pad_to - length)
            length = self._pad_to
        return (self._view[:length],)

    def _padded(self, raw: bytes) -> bytes:
        return raw + bytes(self._pad_to - len(raw)) if len(raw) < self._pad_to else raw

    def _error(self, frame, n, verflags, error, shelf, slot, command, tag, code, arg_len):
        """E=1 with ``code``, echoing up to ``arg_len`` bytes of the request's argument."""
        self._header(frame, verflags, error, shelf, slot, command, tag, code)
        arg_len = max(0, min(arg_len, n - AOE_HEADER_LEN))
        self._reply[AOE_HEADER_LEN:AOE_HEADER_LEN + arg_len] = frame[AOE_HEADER_LEN:AOE_HEADER_LEN + arg_len]
        return self._finish(AOE_HEADER_LEN + arg_len)

    def _truncated(self, frame, n, verflags, error, shelf, slot, command, tag):
        # rule 15: no side effect; we say Error 2 rather than stay silent
        if self._truncated_code is None:
            return _NO_REPLY
        return self._error(frame, n, verflags, error, shelf, slot, command, tag, self._truncated_code, n - AOE_HEADER_LEN)

    def _bad_io(self, frame, n, verflags, error, shelf, slot, tag, aflags, scnt, lba_low, lba_high, reading):
        """Refuse a READ or WRITE that cannot be served (rules 23, 24): Error 2,
        or ATA ABRT when the target takes that reading."""
        if reading in self._refuse_by_abrt:
            return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_ABRT, scnt, STATUS_ERR, lba_low, lba_high)
        return self._error(frame, n, verflags, error, shelf, slot, 0, tag, E_BAD_ARG, 12)

    # -- ATA (§3.1) --------------------------------------------------------------

    def _ata(self, frame, n, verflags, error, shelf, slot, tag):
        if n < ATA_HEADER_END:
            return self._truncated(frame, n, verflags, error, shelf, slot, 0, tag)
        aflags, _feature, scnt, opcode, lba_low, lba_high = ATA_REQUEST.unpack_from(frame, AOE_HEADER_LEN)
        if opcode == READ48 or opcode == READ28:
            lba, end = self._address(frame, opcode == READ48, lba_low, lba_high)
            refused = self._refuse_io(frame, n, verflags, error, shelf, slot, tag, scnt)
            if refused is not None:
                return refused
            if scnt > self._scnt_limit:
                return self._bad_io(frame, n, verflags, error, shelf, slot, tag, aflags, scnt, lba_low, lba_high, "oversize-scnt-abrt")
            if n > ETH_MIN_FRAME and self._trailing_rejected:
                return self._error(frame, n, verflags, error, shelf, slot, 0, tag, E_BAD_ARG, 12)
            if lba + scnt > end:
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_IDNF, scnt, STATUS_ERR, lba_low, lba_high)
            self._header(frame, verflags, error, shelf, slot, 0, tag, 0)
            ATA_REPLY.pack_into(self._reply, AOE_HEADER_LEN, aflags & AFLAGS_DEFINED, 0, 0, self._read_status, lba_low, lba_high, 0)
            end = ATA_HEADER_END + (scnt << 9)
            if self._stale_read and scnt > 1:
                self.image.readinto(self._view[ATA_HEADER_END:ATA_HEADER_END + SECTOR_SIZE], lba << 9)
            else:
                self.image.readinto(self._view[ATA_HEADER_END:end], lba << 9)
            if self._held:
                self._release_held(lba, lba + scnt)  # after the reply took the old data
            return self._finish(end)
        if opcode == WRITE48 or opcode == WRITE28:
            lba, end = self._address(frame, opcode == WRITE48, lba_low, lba_high)
            refused = self._refuse_io(frame, n, verflags, error, shelf, slot, tag, scnt)
            if refused is not None:
                return refused
            length = scnt << 9
            short = n - ATA_HEADER_END < length
            if scnt > self._scnt_limit and not (short and self._short_write_ok):
                return self._bad_io(frame, n, verflags, error, shelf, slot, tag, aflags, scnt, lba_low, lba_high, "oversize-scnt-abrt")
            if short:
                if not self._short_write_ok:
                    return self._bad_io(frame, n, verflags, error, shelf, slot, tag, aflags, scnt, lba_low, lba_high, "short-write-abrt")
                length = n - ATA_HEADER_END
            elif self._from_frame:
                length = n - ATA_HEADER_END  # lengths-from-frame: every byte the frame carries
            if lba + scnt > end:
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_IDNF, scnt, STATUS_ERR, lba_low, lba_high)
            if self._write_protected:
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_ABRT, scnt, STATUS_ERR, lba_low, lba_high)
            if length:
                data = memoryview(frame)[ATA_HEADER_END:ATA_HEADER_END + length]
                if aflags & AFLAG_ASYNC:
                    # acknowledged now, applied before the next request (rule 33)
                    if self._late_async:
                        self._late = (data, lba << 9)  # applied after the next request
                    elif not self._async_lost:
                        self._pending = (data, lba << 9)
                    if self._async_silent:
                        return _NO_REPLY
                else:
                    self._write_now(data, lba << 9)
            return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, 0, 0, STATUS_OK, lba_low, lba_high)
        if opcode == IDENTIFY:
            if self._identify_reserved and self._reservation and frame[6:12] not in self._reserved_set:
                return self._error(frame, n, verflags, error, shelf, slot, 0, tag, E_RESERVED, 12)
            if self._identify_strict and (lba_low or lba_high):
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_ABRT, scnt, STATUS_ERR, lba_low, lba_high)
            if self._identify_scnt and not scnt:
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, 0, 0, STATUS_OK, lba_low, lba_high)
            if n > ETH_MIN_FRAME and self._trailing_rejected:
                return self._error(frame, n, verflags, error, shelf, slot, 0, tag, E_BAD_ARG, 12)
            self._header(frame, verflags, error, shelf, slot, 0, tag, 0)
            ATA_REPLY.pack_into(self._reply, AOE_HEADER_LEN, aflags & AFLAGS_DEFINED, 0, 0, STATUS_OK, lba_low, lba_high, 0)
            self._reply[ATA_HEADER_END:ATA_HEADER_END + SECTOR_SIZE] = self._identify
            return self._finish(ATA_HEADER_END + SECTOR_SIZE)
        if opcode == CHECK_POWER_MODE:
            if not self._power_supported:
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_ABRT, scnt, STATUS_ERR, lba_low, lba_high)
            return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, 0, self._power_scnt, STATUS_OK, lba_low, lba_high)
        if opcode == FLUSH_CACHE or opcode == FLUSH_CACHE_EXT:
            if not self._flush_supported:  # no cache: every write already reached the image
                return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, ERR_ABRT, scnt, STATUS_ERR, lba_low, lba_high)
            self.complete_pending()
            self.image.flush()
            return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, 0, 0, self._flush_status, lba_low, lba_high)
        if self._unsupported_crash:
            self.dead = True
            return _NO_REPLY
        status, err = self._unsupported_result
        return self._ata_status(frame, verflags, error, shelf, slot, tag, aflags, err, scnt if err else 0, status, lba_low, lba_high)

    def _address(self, frame, extended, lba_low, lba_high):
        """(first sector, end of the addressable range) for a READ or WRITE:
        48-bit opcodes use all six LBA bytes, 28-bit ones ignore lba3's high
        nibble (rule 26, 27)."""
        if extended:
            lba = (lba_low | lba_high << 32) & self._lba48_mask
            if self._reserved_lba:
                lba |= int.from_bytes(frame[34:36], "little") << 48
            return lba, self._end48
        return lba_low & self._lba28_mask, self._end

    def _refuse_io(self, frame, n, verflags, error, shelf, slot, tag, scnt):
        """The reply that stops a READ or WRITE before it touches the media, or None."""
        if self._reservation and (frame[6:12] not in self._reserved_set or self._locks_holder) and self._reserve_enforced:
            return self._error(frame, n, verflags, error, shelf, slot, 0, tag, E_RESERVED, 12)  # rule 57
        if not scnt and self._zero_crash:
            self.dead = True
            return _NO_REPLY
        if self._reserved_checked and frame[34:36] != b"\x00\x00":
            return self._error(frame, n, verflags, error, shelf, slot, 0, tag, E_BAD_ARG, 12)  # rule 34 [U]
        return None

    def _ata_status(self, frame, verflags, error, shelf, slot, tag, aflags, ata_error, scnt, status, lba_low, lba_high):
        """An ATA reply without data (AoE E=0)."""
        self._header(frame, verflags, error, shelf, slot, 0, tag, 0)
        ATA_REPLY.pack_into(self._reply, AOE_HEADER_LEN, aflags & AFLAGS_DEFINED, ata_error, scnt, status, lba_low, lba_high, 0)
        return self._finish(ATA_HEADER_END)

    # -- Query Config (§3.2) -------------------------------------------------------

    def _config_body(self, ccmd: int, string: Optional[bytes] = None) -> bytes:
        if string is None:
            string = self.config
        return CONFIG_FIELDS.pack(self.bufcnt, FIRMWARE_VERSION, self._advertised_sectors, VER1 | ccmd, len(string)) + string

    def _config_reply(self, frame, verflags, error, shelf, slot, tag, ccmd, code=0, string=None):
        self._header(frame, verflags, error, shelf, slot, 1, tag, code)
        body = self._config_body(ccmd, string)
        self._reply[AOE_HEADER_LEN:AOE_HEADER_LEN + len(body)] = body
        return self._finish(AOE_HEADER_LEN + len(body))

    def _query_config(self, frame, n, verflags, error, shelf, slot, tag):
        if n < CONFIG_HEADER_END:
            return self._truncated(frame, n, verflags, error, shelf, slot, 1, tag)
        _bufcnt, _firmware, _scnt, version_ccmd, length = CONFIG_FIELDS.unpack_from(frame, AOE_HEADER_LEN)
        ccmd = version_ccmd & 0x0F  # the version nibble is not required (aoetools leave it 0)
        present = n - CONFIG_HEADER_END
        quirks = self.quirks if self._quirky_config else ()
        if quirks:
            if "config-version-nibble-required" in quirks and version_ccmd >> 4 != 1:
                return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd, E_BAD_ARG)
            if "lengths-from-frame" in quirks:
                length = len(bytes(frame[CONFIG_HEADER_END:n]).rstrip(b"\x00"))
            if "trailing-bytes-rejected" in quirks and n > ETH_MIN_FRAME and present > length:
                return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd, E_BAD_ARG)
            if "config-oversize-overflow" in quirks and length > CONFIG_STRING_MAX:
                self.dead = True  # copied into a 1024-byte buffer
                return _NO_REPLY
        if length > CONFIG_STRING_MAX or (length > present and "config-stale-bytes" not in self.quirks):
            if "config-oversize-silent" in quirks:
                return _NO_REPLY
            return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd, E_BAD_ARG)  # rule 42
        if length > present:  # config-stale-bytes: the rest comes from whatever the buffer held
            request = bytes(frame[CONFIG_HEADER_END:n]) + bytes(self._reply[n:CONFIG_HEADER_END + length])
        else:
            request = bytes(frame[CONFIG_HEADER_END:CONFIG_HEADER_END + length])
        current = self.config
        if ccmd == 0:
            if "config-read-echoes-request" in quirks:
                return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd, 0, request)
        elif ccmd == 1:
            if request != current and "config-test-mismatch" not in quirks:
                return _NO_REPLY  # rule 37
        elif ccmd == 2:
            if (not current.startswith(request) or (not request and "config-prefix-empty-silent" in quirks)) and "config-prefix-mismatch" not in quirks:
                return _NO_REPLY  # rule 38
        elif ccmd == 3 or (ccmd == 4 and "config-force-as-set" in quirks):
            if quirks and "config-torn-set" in quirks and self._burst_sets:
                current = self._burst_base  # checked against the string before the burst
            if current and (request != current or "config-set-equal-error" in quirks) and "config-set-overwrites" not in quirks:
                return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd, E_CONFIG_PRESENT)  # rule 39
            self._set_config(request, quirks)
        elif ccmd == 4:
            self._set_config(request, quirks)
        elif "config-ccmd-unchecked" not in quirks:
            if "config-ccmd-silent" in quirks:
                return _NO_REPLY
            code = E_UNKNOWN_COMMAND if "config-ccmd-error-1" in quirks else E_BAD_ARG
            return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd, code)  # rule 41
        return self._config_reply(frame, verflags, error, shelf, slot, tag, ccmd)

    def _set_config(self, request: bytes, quirks) -> None:
        if quirks:
            if "config-nul-truncate" in quirks:
                request = request.split(b"\x00", 1)[0]
            if "config-text-only" in quirks:
                request = request.decode("ascii", "replace").encode("ascii", "replace")
            if "config-torn-set" in quirks:
                if self._burst_sets and len(request) < len(self.config):
                    request = request + self.config[len(request):]
                elif self._burst_sets:
                    request = request[:len(self.config)]
                self._burst_sets += 1
            if "reserve-forgotten-on-config-set" in quirks:
                self._reservation, self._reserved_set = [], set()
                self._restricted = bool(self._mask)
        self.config = request

    # -- Mac Mask List (§3.3) --------------------------------------------------------

    def _mac_mask(self, frame, n, verflags, error, shelf, slot, tag):
        if n < MASK_REPLY_HEAD:
            return self._truncated(frame, n, verflags, error, shelf, slot, 2, tag)
        mcmd, count = frame[AOE_HEADER_LEN + 1], frame[AOE_HEADER_LEN + 3]
        if mcmd == 1:
            if self._from_frame:
                count = min((n - MASK_REPLY_HEAD) // 8, MASK_LIST_MAX)
            if MASK_REPLY_HEAD + 8 * count > n:
                if not self._dircount_unchecked:
                    return self._error(frame, n, verflags, error, shelf, slot, 2, tag, E_BAD_ARG, 4)  # rule 53
                frame = bytes(frame) + bytes(MASK_REPLY_HEAD + 8 * count - n)  # past the frame: zeros
            for index in range(count):
                offset = MASK_REPLY_HEAD + 8 * index
                dcmd, mac = frame[offset + 1], bytes(frame[offset + 2:offset + 8])
                if dcmd == 0:
                    continue
                if dcmd == 1:
                    if mac in self._mask_set and not self._mask_dups:
                        continue
                    if len(self._mask) >= self.mask_capacity:
                        return self._mask_failure(frame, verflags, error, shelf, slot, tag, mcmd, 3, index)
                    self._mask.append(mac)
                    self._mask_set.add(mac)
                    self._restricted = True
                elif dcmd == 2:
                    if mac in self._mask_set:
                        if self._delete_crash:
                            self.dead = True
                            return _NO_REPLY
                        self._mask.remove(mac)
                        self._mask_set.discard(mac)
                        self._restricted = bool(self._mask or self._reservation)
                else:
                    return self._mask_failure(frame, verflags, error, shelf, slot, tag, mcmd, 2, index)
        elif mcmd != 0 and not self._mcmd_unchecked:
            return self._error(frame, n, verflags, error, shelf, slot, 2, tag, E_BAD_ARG, 4)  # rule 50
        self._header(frame, verflags, error, shelf, slot, 2, tag, 0)
        entries = b"".join(b"\x00\x00" + mac for mac in self._mask)
        self._reply[AOE_HEADER_LEN:MASK_REPLY_HEAD] = bytes((0, mcmd, 0, (len(self._mask) + self._mask_extra) & 0xFF))
        self._reply[MASK_REPLY_HEAD:MASK_REPLY_HEAD + len(entries)] = entries
        return self._finish(MASK_REPLY_HEAD + len(entries))

    def _mask_failure(self, frame, verflags, error, shelf, slot, tag, mcmd, merror, index):
        # rule 49: MError and the failing index, E clear, earlier directives stay
        if "mask-wrong-index" in self.quirks:
            index = (index + 1) & 0xFF
        self._header(frame, verflags, error, shelf, slot, 2, tag, 0)
        self._reply[AOE_HEADER_LEN:MASK_REPLY_HEAD] = bytes((0, mcmd, merror, index))
        return self._finish(MASK_REPLY_HEAD)

    # -- Reserve/Release (§3.4) --------------------------------------------------------

    def _reserve(self, frame, n, verflags, error, shelf, slot, tag):
        if n < RESERVE_HEAD:
            return self._truncated(frame, n, verflags, error, shelf, slot, self._reserve_command, tag)
        rcmd, count = frame[AOE_HEADER_LEN], frame[AOE_HEADER_LEN + 1]
        if rcmd == 1 or rcmd == 2:
            if self._from_frame:
                count = min((n - RESERVE_HEAD) // 6, 0xFF)
            if RESERVE_HEAD + 6 * count > n:
                if not self._nmacs_unchecked:
                    return self._error(frame, n, verflags, error, shelf, slot, self._reserve_command, tag, E_BAD_ARG, 2)  # rule 58
                frame = bytes(frame) + bytes(RESERVE_HEAD + 6 * count - n)  # past the frame: zeros
            if (
                (rcmd == 1 or self._force_checked)
                and self._reservation
                and (bytes(frame[6:12]) not in self._reserved_set or self._set_refuses_holder)
                and "reserve-set-steals" not in self.quirks
            ):
                return self._reserve_reply(frame, verflags, error, shelf, slot, tag, rcmd, E_RESERVED)  # rule 55
            macs: list[bytes] = []
            for offset in range(RESERVE_HEAD, RESERVE_HEAD + 6 * count, 6):
                mac = bytes(frame[offset:offset + 6])
                if mac not in macs and not (self._from_frame and mac == ZERO_MAC):
                    macs.append(mac)
            if not macs and self._release_ignored:
                return self._reserve_reply(frame, verflags, error, shelf, slot, tag, rcmd)
            self._reservation = macs  # NMacs 0 releases (rule 56)
            self._reserved_set = set(macs)
            self._restricted = bool(self._mask or self._reservation)
        elif rcmd != 0:
            if self._rcmd_crash:
                self.dead = True
                return _NO_REPLY
            return self._error(frame, n, verflags, error, shelf, slot, self._reserve_command, tag, E_BAD_ARG, 2)  # rule 58
        return self._reserve_reply(frame, verflags, error, shelf, slot, tag, rcmd)

    def _reserve_reply(self, frame, verflags, error, shelf, slot, tag, rcmd, code=0):
        self._header(frame, verflags, error, shelf, slot, self._reserve_command, tag, code)
        body = bytes((rcmd, (len(self._reservation) + self._reserve_extra) & 0xFF)) + b"".join(self._reservation)
        self._reply[AOE_HEADER_LEN:AOE_HEADER_LEN + len(body)] = body
        return self._finish(AOE_HEADER_LEN + len(body))

    # -- quirks that wrap the request path ------------------------------------------

    def _wrap_burst(self, process):
        limit = self._burst_limit

        def burst_limited(frame, burst_index=0):
            if burst_index >= limit:
                return _NO_REPLY  # a queue half the size it claims
            return process(frame, burst_index)

        return burst_limited

    def _wrap_tag_cache(self, process):
        cache: dict[bytes, bytes] = {}

        def tag_cached(frame, burst_index=0):
            tag = bytes(frame[20:24])
            if len(frame) >= AOE_HEADER_LEN and tag in cache:
                return (cache[tag],)
            replies = process(frame, burst_index)
            if replies:
                if len(cache) > 65536:
                    cache.clear()
                cache[tag] = bytes(replies[0])
            return replies

        return tag_cached

    def _wrap_crash(self, process):
        def crashes(frame, burst_index=0):
            if self.dead:
                return _NO_REPLY
            if _is_truncated(frame):
                self.dead = True
                return _NO_REPLY
            return process(frame, burst_index)

        return crashes


    def _wrap_dead(self, process, q):
        """The crash quirks: after the fatal frame, nothing is answered until a restart."""
        runt, vendor, mbz = "crash-on-runt" in q, "vendor-crash" in q, "mbz-crash" in q
        unknown = "unknown-command-crash" in q
        overflow = self.bufcnt if "overflow-crash" in q else None

        def guarded(frame, burst_index=0):
            if self.dead:
                return _NO_REPLY
            if frame[12:14] == AOE_TYPE:
                n = len(frame)
                if n < AOE_HEADER_LEN:
                    if runt:
                        self.dead = True
                        return _NO_REPLY
                else:
                    command = frame[19]
                    if (
                        (vendor and command >= 0xF0)
                        or (unknown and 4 <= command < 0xF0)
                        or (mbz and _has_mbz_bits(frame, n, command))
                    ):
                        self.dead = True
                        return _NO_REPLY
            if overflow is not None and burst_index >= overflow:
                self.dead = True  # the queue overran
                return _NO_REPLY
            return process(frame, burst_index)

        return guarded

    def _wrap_tag_zero(self, process):
        def tag_zero_silent(frame, burst_index=0):
            if len(frame) >= AOE_HEADER_LEN and frame[20:24] == b"\x00\x00\x00\x00":
                return _NO_REPLY
            return process(frame, burst_index)

        return tag_zero_silent

    def _wrap_duplicates(self, process):
        recent: dict = {}

        def drop_repeats(frame, burst_index=0):
            if burst_index == 0:
                recent.clear()  # only a burst's frames are compared
            elif len(frame) >= AOE_HEADER_LEN:
                key = frame[0:6] + frame[12:20] + frame[24:]  # everything but the source and the tag
                if key in recent.get(frame[6:12], ()):
                    return _NO_REPLY  # "a retransmission"
            if len(frame) >= AOE_HEADER_LEN:
                key = frame[0:6] + frame[12:20] + frame[24:]
                seen = recent.get(frame[6:12])
                if seen is None:
                    seen = recent[frame[6:12]] = deque(maxlen=4)
                seen.append(key)
            return process(frame, burst_index)

        return drop_repeats

    def _wrap_reserve_silent(self, process):
        def silent_to_others(frame, burst_index=0):
            if self._reservation and len(frame) >= AOE_HEADER_LEN and frame[19] == 0 and frame[6:12] not in self._reserved_set:
                return _NO_REPLY
            return process(frame, burst_index)

        return silent_to_others

    def _wrap_config_burst(self, process):
        def config_burst(frame, burst_index=0):
            if burst_index == 0:
                self._burst_base, self._burst_sets = self.config, 0
            return process(frame, burst_index)

        return config_burst

    def _wrap_late_async(self, process):
        def late(frame, burst_index=0):
            held, self._late = self._late, None
            replies = process(frame, burst_index)
            if held is not None:
                self.image.write(held[0], held[1])  # lands over what this request wrote
            return replies

        return late

    def _wrap_torn(self, process):
        def torn(frame, burst_index=0):
            if self._torn and (burst_index == 0 or not _is_write(frame)):
                self._apply_torn()
            return process(frame, burst_index)

        return torn

    def _hold_write(self, data, offset):
        """write-applied-after-read: keep each sector's data until a read of it."""
        first = offset // SECTOR_SIZE  # writes start on a sector boundary (lba << 9)
        for pos in range(0, len(data), SECTOR_SIZE):
            self._held[first + pos // SECTOR_SIZE] = bytes(data[pos:pos + SECTOR_SIZE])

    def _release_held(self, first, end):
        for sector in [s for s in self._held if first <= s < end]:
            self.image.write(self._held.pop(sector), sector * SECTOR_SIZE)

    def _tear_write(self, data, offset):
        """torn-overlapping-writes: the first half of each sector now, the rest held back."""
        if len(data) <= SECTOR_SIZE:
            self.image.write(data, offset)
            return
        half = SECTOR_SIZE // 2
        for pos in range(0, len(data), SECTOR_SIZE):
            self.image.write(data[pos:pos + half], offset + pos)
            if pos + half < len(data):
                self._torn.append((bytes(data[pos + half:pos + SECTOR_SIZE]), offset + pos + half))

    def _apply_torn(self):
        torn, self._torn = self._torn, []
        for data, offset in reversed(torn):
            self.image.write(data, offset)


def _has_mbz_bits(frame, n, command) -> bool:
    if frame[14] & FLAGS_MBZ:
        return True
    if command == 0 and n > AOE_HEADER_LEN:
        return bool(frame[AOE_HEADER_LEN] & ~AFLAGS_DEFINED & 0xFF)
    if command == 2 and n > AOE_HEADER_LEN:
        return frame[AOE_HEADER_LEN] != 0  # Mac Mask reserved byte
    return False


def _read_only(frame, n, command) -> bool:
    """Whether a request only reads: what the ver-other-served-readonly reading
    serves under a Ver other than 1 (rule 12 accepts that: no side effect)."""
    if command == 0:
        return n >= ATA_HEADER_END and frame[27] in (READ28, READ48, IDENTIFY, CHECK_POWER_MODE)
    if command == 1:
        return n >= CONFIG_HEADER_END and frame[29] & 0x0F in (0, 1, 2)
    if command == 2:
        return n > 25 and frame[25] == 0
    if command == 3:
        return n > 24 and frame[24] == 0
    return False


def _is_write(frame) -> bool:
    return len(frame) >= ATA_HEADER_END and frame[19] == 0 and frame[27] in (WRITE28, WRITE48)


def _is_truncated(frame) -> bool:
    if len(frame) < AOE_HEADER_LEN:
        return False
    fixed = {0: ATA_HEADER_END, 1: CONFIG_HEADER_END, 2: MASK_REPLY_HEAD, 3: RESERVE_HEAD}.get(frame[19])
    return fixed is not None and len(frame) < fixed


def step(target: Target, frame: bytes, burst_index: int = 0) -> tuple[Target, list[bytes]]:
    """The functional shape: (state, request) to (state, replies). The state
    is the Target object itself, changed in place."""
    return target, target.handle(frame, burst_index)
