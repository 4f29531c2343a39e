"""The reference target against every target-side rule of the protocol notes (§10).

Each test names its rule. Every test runs twice: against the logic in this
process (no root) and against `aoeconform target` running in a lab
namespace, reached over a veth pair (root; skipped with a reason otherwise,
failed under CI=true). Requests are written byte by byte.
"""

from __future__ import annotations

import struct

import pytest

from aoeconform.lab import Lab
from aoeconform.target.drivers import HOST_MAC, OTHER_MACS, SHELF, SLOT, MemoryDriver, VethDriver
from conftest import need_root, unique_lab_name

A, B, C = OTHER_MACS[0], OTHER_MACS[1], OTHER_MACS[2]
SECTOR = 512


@pytest.fixture(scope="module")
def veth_labs():
    labs: dict = {}
    yield labs
    for lab in labs.values():
        lab.down()


@pytest.fixture(params=["memory", "veth"])
def driver(request, tmp_path, veth_labs):
    if request.param == "memory":
        d = MemoryDriver(str(tmp_path))
    else:
        need_root()
        d = VethDriver(str(tmp_path), lambda mtu: Lab(unique_lab_name(), mtu=mtu).up(), veth_labs)
    d.started = False
    original_start = d.start

    def start(**kw):
        d.started = True
        return original_start(**kw)

    d.start = start
    yield d
    d.stop()


@pytest.fixture
def t(driver):
    """A driver with a default target running: MTU 1500, 8 MiB image."""
    return driver.start()


# -- helpers -------------------------------------------------------------------


def one(driver, frame):
    replies = driver.exchange(frame)
    assert len(replies) == 1, f"expected one reply, got {len(replies)}"
    check_reply(driver, frame, replies[0])
    return replies[0]


def silent(driver, frame):
    assert driver.exchange(frame, expect=False) == []


def check_reply(driver, request, reply):
    """Rules 3-7, 11, 16, 17 hold for every reply."""
    assert len(reply) >= 60, "rule 16: pad to 60 bytes"
    assert len(reply) <= driver.mtu + 14, "rule 17: no frame beyond the MTU"
    assert reply[0:6] == request[6:12], "rule 3: reply to the requester"
    assert reply[6:12] == driver.target_mac, "rule 3: from the target's own MAC"
    assert reply[12:14] == b"\x88\xa2"
    assert reply[14] >> 4 == 1, "rule 7: Ver 1"
    assert reply[14] & 0x08, "rule 6: R set"
    assert reply[14] & 0x03 == 0, "rule 9: MBZ flag bits zero"
    assert reply[16:19] == bytes((0, SHELF, SLOT)), "rule 11: real shelf and slot"
    assert reply[19] == request[19], "rule 5: same command"
    assert reply[20:24] == request[20:24], "rule 4: same tag"
    if not reply[14] & 0x04:
        assert reply[15] == 0, "rule 8: Error 0 when E is clear"


def aoe_error(reply):
    return reply[15] if reply[14] & 0x04 else 0


def ata_fields(reply):
    """(aflags, err, scnt, status, lba)."""
    aflags, err, scnt, status = reply[24:28]
    return aflags, err, scnt, status, int.from_bytes(reply[28:34], "little")


def pattern(lba, scnt, salt=0):
    return b"".join(struct.pack("!QQ", lba + i, salt) * 32 for i in range(scnt))


def config_fields(reply):
    bufcnt, firmware, scnt, vc, length = struct.unpack_from("!HHBBH", reply, 24)
    return bufcnt, firmware, scnt, vc >> 4, vc & 0xF, bytes(reply[32:32 + length])


def mask_list(reply):
    count = reply[27]
    return [bytes(reply[28 + 8 * i + 2:28 + 8 * i + 8]) for i in range(count)]


def reserve_list(reply):
    return [bytes(reply[26 + 6 * i:32 + 6 * i]) for i in range(reply[25])]


def write(d, lba, data, op=0x34, **kw):
    reply = one(d, d.ata(op, lba, len(data) // SECTOR, data=data, **kw))
    assert aoe_error(reply) == 0 and reply[27] == 0x40, reply[:36].hex()
    return reply


def read(d, lba, scnt, op=0x24, **kw):
    reply = one(d, d.ata(op, lba, scnt, **kw))
    assert aoe_error(reply) == 0 and reply[27] == 0x40, reply[:36].hex()
    return reply[36:36 + scnt * SECTOR]


# -- header and framing (rules 1-20) ------------------------------------------------


def test_rule01_other_ethertype_ignored(t):
    frame = t.config(0)
    silent(t, frame[:12] + b"\x88\xa3" + frame[14:])


def test_rule02_r_flag_never_answered(t):
    silent(t, t.config(0, flags=0x08))
    silent(t, t.ata(0x24, 0, 1, flags=0x08))
    silent(t, t.config(4, b"x", flags=0x08))
    assert config_fields(one(t, t.config(0)))[5] == b""  # and no side effect


def test_rule03_reply_goes_to_requester(t):
    for src in (HOST_MAC if t.kind == "memory" else t.src, A, B):
        reply = one(t, t.config(0, src=src))
        assert reply[0:6] == src


def test_rule04_tag_returned_bit_exact(t):
    for tag in (0, 1, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF, 0x7FFFFFFF):
        assert one(t, t.ata(0xE5, tag=tag))[20:24] == tag.to_bytes(4, "big")


def test_rule05_command_returned(t):
    for frame in (t.ata(0xEC), t.config(0), t.mask(0), t.reserve(0), t.header(0x42) + bytes(36)):
        assert one(t, frame)[19] == frame[19]


def test_rule06_e_flag_iff_error(t):
    assert not one(t, t.config(0))[14] & 0x04
    reply = one(t, t.header(0x42) + bytes(36))
    assert reply[14] & 0x04 and reply[15] == 1


def test_rule07_version_one_everywhere_including_announcement(t):
    assert t.announcements, "rule 46: announcement at start-up"
    for frame in t.announcements:
        assert frame[14] == 0x18 and frame[19] == 1 and frame[16:19] == bytes((0, SHELF, SLOT))
    assert one(t, t.ata(0xEC))[14] >> 4 == 1


def test_rule08_09_error_byte_and_mbz_zero_in_replies(t):
    reply = one(t, t.config(0, error=0x55, flags=0x03))
    assert reply[14] == 0x18 and reply[15] == 0
    reply = one(t, t.ata(0xE5, error=0x7F, flags=0x07))  # E set in a request is ignored too
    assert reply[14] == 0x18 and reply[15] == 0


@pytest.mark.parametrize("shelf,slot,answered", [
    (SHELF, SLOT, True), (0xFFFF, SLOT, True), (SHELF, 0xFF, True), (0xFFFF, 0xFF, True),
    (SHELF, SLOT + 1, False), (SHELF + 1, SLOT, False), (0xFFFF, SLOT + 1, False), (SHELF + 1, 0xFF, False),
    (0xFFFE, 0xFE, False),
])
def test_rule10_11_addressing_and_real_address_in_reply(t, shelf, slot, answered):
    frame = t.config(0, shelf=shelf, slot=slot, dst=b"\xff" * 6)
    if answered:
        assert one(t, frame)[16:19] == bytes((0, SHELF, SLOT))
    else:
        silent(t, frame)


def test_rule12_other_version_error5_no_side_effect(t):
    for ver in (0, 2, 15):
        reply = one(t, t.config(4, b"changed", ver=ver))
        assert reply[14] == 0x1C and reply[15] == 5
    reply = one(t, t.ata(0x34, 0, 1, data=b"\x11" * SECTOR, ver=2))
    assert aoe_error(reply) == 5
    assert t.read_image(0, SECTOR) == bytes(SECTOR)
    assert config_fields(one(t, t.config(0)))[5] == b""


@pytest.mark.parametrize("command", [4, 5, 0x10, 0x80, 0xEF, 0xF0, 0xF7, 0xFF])
def test_rule13_14_unknown_and_vendor_commands_error1(t, command):
    reply = one(t, t.header(command) + bytes(36))
    assert reply[14] == 0x1C and reply[15] == 1


@pytest.mark.parametrize("command,length", [(0, 27), (0, 35), (1, 24), (1, 31), (2, 27), (3, 25)])
def test_rule15_truncated_argument_error2_no_side_effect(t, command, length):
    full = {0: t.ata(0x34, 0, 0), 1: t.config(4, b""), 2: t.mask(1), 3: t.reserve(2)}[command]
    frame = full[:length]
    replies = t.exchange(frame)
    assert len(replies) == 1 and aoe_error(replies[0]) == 2  # we choose Error 2 (silence is allowed too)
    assert len(replies[0]) >= 60
    one(t, t.config(0))  # still alive


def test_rule16_short_replies_padded(t):
    for frame in (t.ata(0xE5), t.ata(0x34, 0, 1, data=bytes(SECTOR)), t.mask(0), t.reserve(0), t.config(0), t.header(9) + bytes(36)):
        assert len(one(t, frame)) >= 60


@pytest.mark.parametrize("mtu,sectors", [(1500, 2), (9000, 17)])
def test_rule17_largest_read_fits_mtu(driver, mtu, sectors):
    d = driver.start(mtu=mtu)
    assert config_fields(one(d, d.config(0)))[2] == sectors
    reply = one(d, d.ata(0x24, 0, sectors))
    assert len(reply) == 36 + sectors * SECTOR <= mtu + 14
    assert aoe_error(one(d, d.ata(0x24, 0, sectors + 1))) == 2


def test_rule18_duplicates_are_safe_and_equivalent(t):
    data = pattern(10, 2)
    frame = t.ata(0x34, 10, 2, data=data)
    first, second = one(t, frame), one(t, frame)
    assert first[14:] == second[14:]
    frame = t.ata(0x24, 10, 2)
    assert one(t, frame) == one(t, frame)
    frame = t.config(3, b"same")
    assert one(t, frame) == one(t, frame)
    assert read(t, 10, 2) == data


def test_rule19_20_buffer_count_burst_in_order(t):
    frames = [t.ata(0x34, 100, 1, data=bytes([i]) * SECTOR) for i in range(16)]
    replies = t.burst(frames)
    assert len(replies) == 16
    assert {r[20:24] for r in replies} == {f[20:24] for f in frames}
    assert all(r[27] == 0x40 for r in replies)
    assert read(t, 100, 1) == bytes([15]) * SECTOR  # the last write wins, nothing torn


# -- ATA (rules 21-34) ------------------------------------------------------------


@pytest.mark.parametrize("op", [0x20, 0x24])
def test_rule21_read_returns_data_and_status(t, op):
    data = pattern(5, 2, salt=op)
    t.write_image(5 * SECTOR, data)
    reply = one(t, t.ata(op, 5, 2))
    aflags, err, scnt, status, lba = ata_fields(reply)
    assert (err, scnt, status, lba) == (0, 0, 0x40, 5)
    assert aoe_error(reply) == 0
    assert len(reply) == 36 + 2 * SECTOR and reply[36:] == data


@pytest.mark.parametrize("op", [0x30, 0x34])
def test_rule22_write_persists_and_reply_has_no_data(t, op):
    data = pattern(7, 2, salt=op)
    reply = write(t, 7, data, op=op)
    assert len(reply) == 60 and reply[36:] == bytes(24)
    assert t.read_image(7 * SECTOR, 2 * SECTOR) == data
    assert read(t, 7, 2) == data


def test_rule23_short_write_payload_rejected_nothing_written(t):
    reply = one(t, t.ata(0x34, 3, 2, data=b"\x77" * (SECTOR + 100)))
    assert aoe_error(reply) == 2
    assert t.read_image(3 * SECTOR, 2 * SECTOR) == bytes(2 * SECTOR)


def test_rule24_sector_count_above_maximum_rejected(t):
    limit = config_fields(one(t, t.config(0)))[2]
    reply = one(t, t.ata(0x24, 0, limit + 1))
    assert aoe_error(reply) == 2 and len(reply) == 60
    reply = one(t, t.ata(0x34, 0, 200, data=b"\x55" * (t.mtu - 36 - 100)))
    assert aoe_error(reply) == 2
    assert t.read_image(0, 4 * SECTOR) == bytes(4 * SECTOR)


@pytest.mark.parametrize("op,lba,scnt", [(0x24, -1, 2), (0x24, 0, 1), (0x34, -1, 2), (0x20, 0, 1), (0x30, -1, 2), (0x24, 1 << 40, 1)])
def test_rule25_past_the_end_idnf_nothing_changed(t, op, lba, scnt):
    lba = t.capacity + lba if lba < 0 else (t.capacity if lba == 0 else lba)
    data = b"\x99" * (scnt * SECTOR) if op in (0x30, 0x34) else b""
    reply = one(t, t.ata(op, lba, scnt, data=data))
    _, err, _, status, _ = ata_fields(reply)
    assert aoe_error(reply) == 0 and (status, err) == (0x41, 0x10)
    assert len(reply) == 60
    assert t.read_image((t.capacity - 1) * SECTOR, SECTOR) == bytes(SECTOR)


def test_rule25_last_sector_reachable(t):
    write(t, t.capacity - 1, b"\x42" * SECTOR)
    assert read(t, t.capacity - 1, 1) == b"\x42" * SECTOR


def test_rule26_lba28_little_endian_device_bits_ignored(t):
    data = pattern(0x1234, 1)
    write(t, 0xE0001234, data, op=0x30)  # lba3 = 0xE0: device register, not address
    assert t.read_image(0x1234 * SECTOR, SECTOR) == data
    assert read(t, 0xA0001234, 1, op=0x20) == data
    reply = one(t, t.ata(0x20, 0x0F001234, 1))  # the low nibble of lba3 is address
    assert ata_fields(reply)[1] == 0x10


def test_rule27_lba48_uses_all_bits_and_opcode_decides(t):
    reply = one(t, t.ata(0x24, (1 << 32) | 5, 1))
    assert ata_fields(reply)[1] == 0x10, "not wrapped to a small LBA"
    write(t, 9, b"\x24" * SECTOR, op=0x34, aflags=0x01)  # E clear: still 48-bit, still a write
    assert read(t, 9, 1, op=0x24, aflags=0x00) == b"\x24" * SECTOR
    assert read(t, 9, 1, op=0x20, aflags=0x40) == b"\x24" * SECTOR


def test_rule28_identify_matches_capacity(t):
    reply = one(t, t.ata(0xEC, 0xA0 << 24, 1))
    aflags, err, scnt, status, _ = ata_fields(reply)
    assert (status, err) == (0x40, 0)
    assert len(reply) == 36 + 512
    words = struct.unpack_from("<256H", reply, 36)
    assert words[60] | words[61] << 16 == min(t.capacity, 0x0FFFFFFF)
    assert words[83] & 0x400 and words[86] & 0x400
    assert sum(words[100 + i] << (16 * i) for i in range(4)) == t.capacity
    model = b"".join(struct.pack(">H", w) for w in words[27:47]).strip()
    assert model and b"\x00" not in model
    assert b"".join(struct.pack(">H", w) for w in words[10:20]).strip()
    assert b"".join(struct.pack(">H", w) for w in words[23:27]).strip()
    # the advertised capacity is readable and one more is not
    read(t, t.capacity - 1, 1)
    assert ata_fields(one(t, t.ata(0x24, t.capacity, 1)))[1] == 0x10


@pytest.mark.parametrize("op", [0xB0, 0xEF, 0x99, 0x00, 0xC8, 0xCA, 0x25, 0x35])
def test_rule29_unsupported_opcode_abrt(t, op):
    reply = one(t, t.ata(op, 0, 1, data=b"\x66" * SECTOR))
    _, err, _, status, _ = ata_fields(reply)
    assert aoe_error(reply) == 0 and (status, err) == (0x41, 0x04)
    assert t.read_image(0, SECTOR) == bytes(SECTOR)


@pytest.mark.parametrize("scnt", [0, 1, 0xFF])
def test_rule30_check_power_mode(t, scnt):
    reply = one(t, t.ata(0xE5, 0, scnt))
    _, err, rscnt, status, _ = ata_fields(reply)
    assert (rscnt, status, err) == (0xFF, 0x40, 0)


@pytest.mark.parametrize("op", [0xE7, 0xEA])
def test_rule31_flush_succeeds_with_drdy(t, op):
    reply = one(t, t.ata(op, 0, 0))
    assert ata_fields(reply)[3] == 0x40 and aoe_error(reply) == 0


def test_rule32_readonly_export_refuses_writes(driver):
    d = driver.start(readonly=True)
    for op in (0x30, 0x34):
        reply = one(d, d.ata(op, 1, 1, data=b"\x31" * SECTOR))
        _, err, _, status, _ = ata_fields(reply)
        assert (status, err) == (0x41, 0x04) and aoe_error(reply) == 0
    assert d.read_image(SECTOR, SECTOR) == bytes(SECTOR)
    read(d, 1, 1)


def test_rule33_async_write_readable_afterwards(t):
    data = pattern(20, 2, salt=33)
    reply = one(t, t.ata(0x34, 20, 2, aflags=0x43, data=data))
    assert ata_fields(reply)[3] == 0x40
    assert read(t, 20, 2) == data
    one(t, t.ata(0xEA, 0, 0))
    assert t.read_image(20 * SECTOR, 2 * SECTOR) == data


def test_rule34_ata_reserved_bytes_and_mbz_aflags_ignored(t):
    data = pattern(30, 1)
    write(t, 30, data, aflags=0x41 | 0xAC, reserved=0xFFFF)
    reply = one(t, t.ata(0x24, 30, 1, reserved=0x1234, aflags=0x40 | 0x80))
    assert reply[36:] == data and reply[34:36] == b"\0\0" and reply[24] & 0xAC == 0


def test_scnt_zero_is_zero_sectors(t):
    reply = one(t, t.ata(0x24, 0, 0))
    assert ata_fields(reply)[3] == 0x40 and len(reply) == 60
    write(t, 0, b"")


# -- Query Config (rules 35-46) ------------------------------------------------------


def test_rule35_reply_fields(t):
    bufcnt, firmware, scnt, version, ccmd, string = config_fields(one(t, t.config(0)))
    assert (bufcnt, version, ccmd, string) == (16, 1, 0, b"")
    assert scnt == 2  # MTU 1500


def test_rule35_bufcnt_option(driver):
    d = driver.start(bufcnt=64, config=b"preset")
    assert config_fields(one(d, d.config(0)))[0] == 64
    assert config_fields(one(d, d.config(0)))[5] == b"preset"


def test_rule36_read_ignores_request_string(t):
    one(t, t.config(4, b"current"))
    assert config_fields(one(t, t.config(0, b"something else")))[5] == b"current"
    assert config_fields(one(t, t.config(0, b"x", version=0)))[5] == b"current"  # no version nibble needed


def test_rule37_test_exact_match_only(t):
    one(t, t.config(4, b"abc\x00def"))
    assert config_fields(one(t, t.config(1, b"abc\x00def")))[4:] == (1, b"abc\x00def")
    for other in (b"abc", b"abc\x00de", b"abc\x00defg", b"", b"ABC\x00def"):
        silent(t, t.config(1, other))


def test_rule38_prefix_match_only(t):
    one(t, t.config(4, b"prefix-test"))
    for prefix in (b"", b"p", b"prefix-", b"prefix-test"):
        assert config_fields(one(t, t.config(2, prefix)))[5] == b"prefix-test"
    for other in (b"x", b"prefix-test!", b"refix"):
        silent(t, t.config(2, other))


def test_rule39_set(t):
    assert config_fields(one(t, t.config(3, b"first")))[5] == b"first"
    reply = one(t, t.config(3, b"second"))
    assert reply[14] & 0x04 and reply[15] == 4 and config_fields(reply)[5] == b"first"
    reply = one(t, t.config(3, b"first"))
    assert aoe_error(reply) == 0 and config_fields(reply)[5] == b"first"
    assert config_fields(one(t, t.config(0)))[5] == b"first"


def test_rule40_force_set(t):
    one(t, t.config(3, b"first"))
    assert config_fields(one(t, t.config(4, b"forced")))[5] == b"forced"
    assert config_fields(one(t, t.config(4, b"")))[5] == b""


@pytest.mark.parametrize("ccmd", range(5, 16))
def test_rule41_unknown_ccmd_error2(t, ccmd):
    reply = one(t, t.config(ccmd, b"new"))
    assert aoe_error(reply) == 2
    assert config_fields(one(t, t.config(0)))[5] == b""


def test_rule42_oversize_or_overlong_length_rejected(t):
    one(t, t.config(4, b"keep"))
    reply = one(t, t.config(4, b"x" * 1025))
    assert aoe_error(reply) == 2
    reply = one(t, t.config(4, b"short", length=40))  # 5 bytes + padding present, 40 claimed
    assert aoe_error(reply) == 2
    reply = one(t, t.config(4, b"", length=0xFFFF))
    assert aoe_error(reply) == 2
    assert config_fields(one(t, t.config(0)))[5] == b"keep"


def test_rule43_binary_string_byte_exact(t):
    blob = bytes(range(256)) * 4
    assert config_fields(one(t, t.config(4, blob)))[5] == blob
    assert config_fields(one(t, t.config(0)))[5] == blob
    one(t, t.config(4, b"\x00\x00"))
    assert config_fields(one(t, t.config(0)))[5] == b"\x00\x00"


def test_rule44_two_setters_one_wins(t):
    first = one(t, t.config(3, b"from A", src=A))
    second = one(t, t.config(3, b"from B", src=B))
    assert aoe_error(first) == 0 and aoe_error(second) == 4
    assert config_fields(one(t, t.config(0)))[5] == b"from A"


def test_rule45_broadcast_query_one_reply(t):
    replies = t.exchange(t.config(0, shelf=0xFFFF, slot=0xFF, dst=b"\xff" * 6))
    assert len(replies) == 1


def test_rule46_announcement(driver):
    d = driver.start(config=b"hello")
    assert len(d.announcements) == 1
    frame = d.announcements[0]
    assert frame[0:6] == b"\xff" * 6 and frame[6:12] == d.target_mac and len(frame) >= 60
    assert config_fields(frame)[5] == b"hello" and frame[14] == 0x18


def test_rule46_announcement_unicast_to_masked_macs(driver):
    d = driver.start(mask=[A, B])
    assert sorted(f[0:6] for f in d.announcements) == sorted([A, B])


# -- Mac Mask List (rules 47-53) -------------------------------------------------------


def test_rule47_read(t):
    reply = one(t, t.mask(0))
    assert reply[25:28] == b"\x00\x00\x00" and aoe_error(reply) == 0
    one(t, t.mask(1, [(1, t.src), (1, A)]))
    reply = one(t, t.mask(0))
    assert reply[27] == 2 and mask_list(reply) == [t.src, A]
    assert all(reply[28 + 8 * i:30 + 8 * i] == b"\0\0" for i in range(2))


def test_rule48_edit_in_order_duplicates_and_absent(t):
    reply = one(t, t.mask(1, [(1, t.src), (1, A), (1, A), (0, B), (2, C), (2, A), (1, B)]))
    assert reply[26] == 0 and mask_list(reply) == [t.src, B]


def test_rule49_first_bad_directive(t):
    reply = one(t, t.mask(1, [(1, t.src), (1, A), (7, B), (1, C)]))
    assert aoe_error(reply) == 0 and not reply[14] & 0x04
    assert reply[26] == 2 and reply[27] == 2
    assert mask_list(one(t, t.mask(0))) == [t.src, A]


def test_rule49_list_full(driver):
    d = driver.start(mtu=9000)
    macs = [bytes.fromhex("0200000100") + bytes([i]) for i in range(254)]
    reply = one(d, d.mask(1, [(1, d.src)] + [(1, m) for m in macs]))
    assert reply[26] == 0 and reply[27] == 255
    reply = one(d, d.mask(1, [(1, A), (1, B)]))
    assert (reply[26], reply[27]) == (3, 0)
    reply = one(d, d.mask(1, [(2, macs[0]), (1, A), (1, B)]))
    assert (reply[26], reply[27]) == (3, 2)
    assert len(mask_list(one(d, d.mask(0)))) == 255


@pytest.mark.parametrize("mcmd", [2, 3, 0x80, 0xFF])
def test_rule50_unknown_mcmd(t, mcmd):
    reply = one(t, t.mask(mcmd, [(1, A)]))
    assert aoe_error(reply) == 2
    assert mask_list(one(t, t.mask(0))) == []


def test_rule51_unlisted_macs_get_nothing(t):
    one(t, t.mask(1, [(1, A)], src=A))
    for frame in (t.config(0, src=B), t.ata(0xEC, src=B), t.mask(0, src=B), t.reserve(0, src=B),
                  t.config(4, b"x", src=B), t.mask(1, [(2, A)], src=B), t.header(9, src=B) + bytes(36)):
        silent(t, frame)
    silent(t, t.ata(0x34, 0, 1, data=b"\x51" * SECTOR, src=B))
    assert t.read_image(0, SECTOR) == bytes(SECTOR)
    assert mask_list(one(t, t.mask(0, src=A))) == [A]
    assert config_fields(one(t, t.config(0, src=A)))[5] == b""


def test_rule52_empty_list_allows_everyone(t):
    one(t, t.mask(1, [(1, A)], src=A))
    one(t, t.mask(1, [(2, A)], src=A))
    one(t, t.config(0, src=B))


def test_rule53_dir_count_beyond_frame(t):
    reply = one(t, t.mask(1, [(1, A)], count=20))
    assert aoe_error(reply) == 2
    assert mask_list(one(t, t.mask(0))) == []


# -- Reserve/Release (rules 54-58) -------------------------------------------------------


def test_rule54_read(t):
    reply = one(t, t.reserve(0))
    assert reply[24:26] == b"\x00\x00"
    one(t, t.reserve(1, [A, B], src=A))
    reply = one(t, t.reserve(0, src=C))
    assert reply[24] == 0 and reserve_list(reply) == [A, B]


def test_rule55_set_only_when_free_or_member(t):
    one(t, t.reserve(1, [A], src=A))
    reply = one(t, t.reserve(1, [B], src=B))
    assert aoe_error(reply) == 6 and reserve_list(reply) == [A]
    reply = one(t, t.reserve(1, [A, B], src=A))
    assert aoe_error(reply) == 0 and reserve_list(reply) == [A, B]
    assert reserve_list(one(t, t.reserve(0))) == [A, B]


def test_rule56_force_set_and_release(t):
    one(t, t.reserve(1, [A], src=A))
    reply = one(t, t.reserve(2, [C], src=C))
    assert aoe_error(reply) == 0 and reserve_list(reply) == [C]
    reply = one(t, t.reserve(1, [], src=C))
    assert reserve_list(reply) == []
    write(t, 0, b"\x56" * SECTOR, src=B)


def test_rule57_enforcement(t):
    one(t, t.reserve(1, [A], src=A))
    for frame in (t.ata(0x24, 0, 1, src=B), t.ata(0x20, 0, 1, src=B), t.ata(0x34, 0, 1, data=b"\x57" * SECTOR, src=B),
                  t.ata(0x30, 0, 1, data=b"\x57" * SECTOR, src=B)):
        reply = one(t, frame)
        assert reply[14] & 0x04 and reply[15] == 6
    assert t.read_image(0, SECTOR) == bytes(SECTOR)
    # config, mask, reserve-read and IDENTIFY (our choice) stay available
    one(t, t.config(0, src=B))
    one(t, t.mask(0, src=B))
    one(t, t.reserve(0, src=B))
    assert ata_fields(one(t, t.ata(0xEC, src=B)))[3] == 0x40
    write(t, 0, b"\x57" * SECTOR, src=A)
    assert read(t, 0, 1, src=A) == b"\x57" * SECTOR


def test_rule58_bad_rcmd_or_nmacs(t):
    one(t, t.reserve(1, [A], src=A))
    for frame in (t.reserve(3, [B], src=A), t.reserve(0xFF, src=A), t.reserve(2, [B], nmacs=40, src=A)):
        assert aoe_error(one(t, frame)) == 2
    assert reserve_list(one(t, t.reserve(0))) == [A]
