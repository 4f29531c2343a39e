"""Cross-check our frames and our pcap files with Wireshark's AoE dissector.

Frames we build, and vblade's replies to them, are recorded through
RecordingTransport; tshark (reading the file only, never capturing) must
decode the same field values and find nothing malformed.
"""

import os
import subprocess
import time

import pytest

from aoeconform.transport.pcap import RecordingTransport, write_pcap
from aoeconform.wire import AtaArg, ConfigArg, Frame, Header, constants as C
from conftest import need_program

FIELDS = [
    "frame.number",
    "aoe.version",
    "aoe.response",
    "aoe.flags_error",
    "aoe.cmd",
    "aoe.tag",
    "aoe.major",
    "aoe.minor",
    "aoe.aflags.e",
    "aoe.aflags.w",
    "aoe.sector_count",
    "aoe.ata.cmd",
    "aoe.ata.status",
    "aoe.lba",
    "aoe.response_to",
]
PROBLEMS = "_ws.malformed || _ws.expert.severity >= error"


@pytest.fixture(scope="module")
def tshark():
    return need_program("tshark", "tshark")


def run_tshark(tshark, *args) -> str:
    # Read a file only; no capture, no name resolution, no user profile.
    env = dict(os.environ, WIRESHARK_CONFIG_DIR="/nonexistent", HOME="/nonexistent")
    proc = subprocess.run([tshark, "-n", *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"tshark failed: {proc.stderr.strip()}"
    return proc.stdout


def tshark_fields(tshark, path):
    args = ["-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    for f in FIELDS:
        args += ["-e", f]
    rows = []
    for line in run_tshark(tshark, *args).splitlines():
        values = line.split("\t")
        rows.append({name: _value(v) for name, v in zip(FIELDS, values)})
    return rows


def _value(text: str):
    if text == "":
        return None
    if text in ("True", "False"):  # newer tshark prints booleans as words
        return int(text == "True")
    return int(text, 0)


def expected_fields(frame: Frame) -> dict:
    h = frame.header
    row = {
        "aoe.version": h.ver,
        "aoe.response": int(h.response),
        "aoe.flags_error": int(h.error_flag),
        "aoe.cmd": h.command,
        "aoe.tag": h.tag,
        "aoe.major": h.shelf,
        "aoe.minor": h.slot,
    }
    if isinstance(frame.arg, AtaArg):
        a = frame.arg
        row.update({
            "aoe.aflags.e": int(a.extended),
            "aoe.aflags.w": int(a.write),
            "aoe.sector_count": a.sector_count,
            "aoe.lba": a.lba,
            ("aoe.ata.status" if h.response else "aoe.ata.cmd"): a.cmd_status,
        })
    return row


def test_tshark_agrees_with_our_frames_and_vblade(tshark, vblade_lab, tmp_path):
    lab = vblade_lab
    path = tmp_path / "session.pcap"
    tag = 0x80000000 | (os.getpid() & 0xFFFF) << 8

    def ata(**kw):
        return Header(dst=lab.target_mac, src=b"", shelf=lab.shelf, slot=lab.slot, command=C.CMD_ATA), AtaArg(**kw)

    plan = [
        (Header(dst=C.BROADCAST_MAC, src=b"", shelf=C.SHELF_BROADCAST, slot=C.SLOT_BROADCAST, command=C.CMD_QUERY_CONFIG),
         ConfigArg(ccmd=C.CCMD_READ)),
        ata(aflags=C.AFLAG_E, sector_count=2, cmd_status=C.ATA_READ_SECTORS_EXT, lba=0x010203),
        ata(aflags=C.AFLAG_E | C.AFLAG_W, sector_count=2, cmd_status=C.ATA_WRITE_SECTORS_EXT, lba=70000,
            data=os.urandom(2 * C.SECTOR_SIZE)),
        ata(aflags=0, sector_count=1, cmd_status=C.ATA_READ_SECTORS, lba=(C.LBA_MODE_BITS << 24) | 70000),
        ata(aflags=0, sector_count=1, cmd_status=C.ATA_IDENTIFY_DEVICE, lba=C.IDENTIFY_DEVICE_BITS << 24),
    ]
    ours = []  # (frame we sent or received, index in the capture)
    with RecordingTransport(lab.transport(), path) as t:
        for i, (header, arg) in enumerate(plan):
            header.src = t.mac
            header.tag = tag + i
            request = Frame(header=header, arg=arg)
            t.send(request.encode(pad=True))
            ours.append(request)
            deadline = time.monotonic() + 2
            while True:
                raw = t.recv(max(0.0, deadline - time.monotonic()))
                assert raw is not None, f"vblade did not answer {request.describe()}"
                reply = Frame.decode(raw)
                ours.append(reply)  # recorded whether or not it is ours
                if reply.header.tag == header.tag:
                    break

    rows = tshark_fields(tshark, path)
    assert len(rows) == len(ours)
    for number, (row, frame) in enumerate(zip(rows, ours), start=1):
        assert row["frame.number"] == number
        for name, value in expected_fields(frame).items():
            assert row[name] == value, f"frame {number} {name}: tshark {row[name]!r}, ours {value!r} ({frame.describe()})"
        if frame.header.response and frame.header.command == C.CMD_ATA:
            # tshark pairs ATA replies (only those) with the request carrying their tag
            request_number = next(i for i, f in enumerate(ours, 1) if not f.header.response and f.header.tag == frame.header.tag)
            assert row["aoe.response_to"] == request_number

    assert run_tshark(tshark, "-r", str(path), "-Y", PROBLEMS).strip() == ""


def test_tshark_reads_our_pcap_writer_and_flags_a_truncated_frame(tshark, tmp_path):
    """The problem filter is not vacuous: a truncated ATA header is flagged."""
    src = bytes.fromhex("020000000001")
    good = Frame(
        header=Header(dst=C.BROADCAST_MAC, src=src, shelf=1, slot=2, command=C.CMD_ATA, tag=7),
        arg=AtaArg(aflags=C.AFLAG_E, sector_count=1, cmd_status=C.ATA_READ_SECTORS_EXT, lba=5),
    ).encode(pad=True)
    truncated = good[:30]
    path = tmp_path / "mixed.pcap"
    write_pcap(path, [good, truncated], [1000.0, 1000.5])
    rows = tshark_fields(tshark, path)
    assert [r["aoe.tag"] for r in rows] == [7, 7]
    flagged = run_tshark(tshark, "-r", str(path), "-Y", PROBLEMS, "-T", "fields", "-e", "frame.number")
    assert flagged.split() == ["2"]
    times = run_tshark(tshark, "-r", str(path), "-T", "fields", "-e", "frame.time_epoch").split()
    assert [round(float(x), 6) for x in times] == [1000.0, 1000.5]
