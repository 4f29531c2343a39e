"""Discovery (aoeconform.initiator.discovery), --target addressing, and `aoeconform discover`.

In memory: fake targets answer on a MemoryLink in threads. As root: the CLI
against Debian's vblade in a lab at MTU 1500 and 9000.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from aoeconform.cli import main as cli_main
from aoeconform.errors import TargetUnreachable, UsageError
from aoeconform.initiator.addressing import TargetSpec, open_target, parse_target, resolve
from aoeconform.initiator.discovery import discover
from aoeconform.transport.memory import MemoryLink
from aoeconform.wire import AtaArg, ConfigArg, DecodeError, Frame, Header, IdentifyData
from aoeconform.wire.constants import FLAG_ERROR, FLAG_RESPONSE

HOST_MAC = bytes.fromhex("020000000001")
TARGET_A = bytes.fromhex("02000000000a")
TARGET_B = bytes.fromhex("02000000000b")
FAST = 0.3  # seconds: fake targets answer at once


class FakeTarget:
    """Answers Query Config and IDENTIFY like a small vblade; knobs make it misbehave."""

    def __init__(self, link, mac, shelf=1, slot=2, *, bufcnt=16, firmware=0x4019, sector_count=2, config=b"",
                 capacity=131072, answer_identify=True, identify_status=0x40, reply_address=None, replies=1):
        self.endpoint = link.endpoint(mac)
        self.mac, self.shelf, self.slot = mac, shelf, slot
        self.config = ConfigArg(bufcnt=bufcnt, firmware=firmware, sector_count=sector_count, config=config)
        self.identify = IdentifyData.build(capacity, model="Fake AoE disk", serial=f"{shelf}.{slot}:fake", firmware="F1")
        self.answer_identify = answer_identify
        self.identify_status = identify_status
        self.reply_address = reply_address or (shelf, slot)
        self.replies = replies
        self.received = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _reply(self, request: Frame, arg) -> None:
        shelf, slot = self.reply_address
        header = Header(dst=request.header.src, src=self.mac, shelf=shelf, slot=slot, command=request.header.command,
                        tag=request.header.tag, flags=FLAG_RESPONSE)
        for _ in range(self.replies):
            self.endpoint.send(Frame(header, arg).encode())

    def _serve(self) -> None:
        while not self._stop.is_set():
            raw = self.endpoint.recv(0.02)
            if raw is None:
                continue
            try:
                frame = Frame.decode(raw)
            except DecodeError:
                continue
            h = frame.header
            if h.response or h.shelf not in (self.shelf, 0xFFFF) or h.slot not in (self.slot, 0xFF):
                continue
            self.received.append(frame)
            if h.command == 1:
                self._reply(frame, self.config)
            elif h.command == 0 and frame.arg.cmd_status == 0xEC and self.answer_identify:
                data = self.identify.encode() if self.identify_status == 0x40 else b""
                self._reply(frame, AtaArg(cmd_status=self.identify_status, err_feature=0 if data else 0x04, data=data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.endpoint.close()


@pytest.fixture
def link():
    targets = []
    with MemoryLink() as wire:
        wire.targets = targets
        yield wire
        for target in targets:
            target.close()


def add_target(link, *args, **kwargs) -> FakeTarget:
    target = FakeTarget(link, *args, **kwargs)
    link.targets.append(target)
    return target


# --- discover ------------------------------------------------------------------


def test_one_target_is_found_and_identified(link):
    target = add_target(link, TARGET_A, 1, 2, config=b"hello")
    sniffer = link.endpoint(bytes.fromhex("0200000000ff"), promiscuous=True)
    host = link.endpoint(HOST_MAC)
    found = discover(host, FAST)
    assert len(found) == 1 and found.ignored == []
    r = found[0]
    assert (r.mac, r.shelf, r.slot, r.bufcnt, r.firmware, r.max_sectors, r.config) == (TARGET_A, 1, 2, 16, 0x4019, 2, b"hello")
    assert (r.model, r.serial, r.firmware_rev, r.capacity, r.lba48) == ("Fake AoE disk", "1.2:fake", "F1", 131072, True)
    assert r.identify_error is None

    sent = [Frame.decode(f) for f in iter(lambda: sniffer.recv(0), None) if f[6:12] == HOST_MAC]
    query = sent[0]
    assert query.header.dst == b"\xff" * 6 and (query.header.shelf, query.header.slot, query.header.command) == (0xFFFF, 0xFF, 1)
    assert not query.header.response and query.arg.ccmd == 0
    identify = [f for f in sent if f.header.command == 0]
    assert len(identify) == 1
    ident = identify[0]
    assert ident.header.dst == TARGET_A and (ident.header.shelf, ident.header.slot) == (1, 2)
    assert (ident.arg.cmd_status, ident.arg.sector_count, ident.arg.aflags) == (0xEC, 1, 0)
    assert (ident.arg.lba >> 24) & 0xFF == 0xA0
    assert all(len(f.encode()) >= 60 for f in sent)  # requests are padded
    assert target.received


def test_duplicates_are_merged_and_targets_sorted(link):
    add_target(link, TARGET_B, 3, 1, replies=2)
    add_target(link, TARGET_A, 1, 7, replies=3)
    found = discover(link.endpoint(HOST_MAC), FAST)
    assert [(r.mac, r.shelf, r.slot) for r in found] == [(TARGET_A, 1, 7), (TARGET_B, 3, 1)]
    assert all(r.capacity == 131072 for r in found)


def test_same_address_from_two_macs_is_two_records(link):
    add_target(link, TARGET_A, 1, 2)
    add_target(link, TARGET_B, 1, 2)
    found = discover(link.endpoint(HOST_MAC), FAST)
    assert [r.mac for r in found] == [TARGET_A, TARGET_B]


@pytest.mark.parametrize("address", [(0xFFFF, 2), (1, 0xFF), (0x0FFF, 2)])
def test_wildcard_replies_are_ignored_but_reported(link, address):
    add_target(link, TARGET_A, 1, 2, reply_address=address)
    add_target(link, TARGET_B, 4, 4)
    found = discover(link.endpoint(HOST_MAC), FAST)
    assert [(r.shelf, r.slot) for r in found] == [(4, 4)]
    assert len(found.ignored) == 1
    ignored = found.ignored[0]
    assert (ignored.mac, ignored.shelf, ignored.slot) == (TARGET_A, *address)
    assert "Linux" in ignored.reason and "02:00:00:00:00:0a" in ignored.describe()


def test_error_replies_are_reported_not_listed(link):
    host = link.endpoint(HOST_MAC)
    rogue = link.endpoint(TARGET_A)

    def answer():
        request = Frame.decode(rogue.recv(2))
        header = Header(dst=HOST_MAC, src=TARGET_A, shelf=1, slot=2, command=1, tag=request.header.tag,
                        flags=FLAG_RESPONSE | FLAG_ERROR, error=2)
        rogue.send(Frame(header, ConfigArg()).encode())

    thread = threading.Thread(target=answer)
    thread.start()
    found = discover(host, FAST)
    thread.join()
    assert list(found) == [] and "error reply 2" in found.ignored[0].reason


def test_sector_count_zero_means_two(link):
    add_target(link, TARGET_A, 1, 2, sector_count=0)
    found = discover(link.endpoint(HOST_MAC), FAST, identify=False)
    assert found[0].sector_count == 0 and found[0].max_sectors == 2
    assert not found[0].model and found[0].capacity is None


def test_unanswered_identify_leaves_the_config_and_says_why(link):
    target = add_target(link, TARGET_A, 1, 2, answer_identify=False)
    found = discover(link.endpoint(HOST_MAC), FAST)
    r = found[0]
    assert r.bufcnt == 16 and r.capacity is None and not r.identified
    assert r.identify_error == "no reply to IDENTIFY DEVICE"
    assert sum(1 for f in target.received if f.header.command == 0) == 3  # retried with fresh tags
    tags = [f.header.tag for f in target.received if f.header.command == 0]
    assert len(set(tags)) == 3 and all(t & 0x80000000 for t in tags)


def test_identify_failure_status_is_reported(link):
    add_target(link, TARGET_A, 1, 2, identify_status=0x41)
    r = discover(link.endpoint(HOST_MAC), FAST)[0]
    assert r.capacity is None and "ATA status 0x41" in r.identify_error


def test_no_targets_gives_an_empty_result(link):
    found = discover(link.endpoint(HOST_MAC), 0.1)
    assert list(found) == [] and found.ignored == []


def test_record_as_dict_is_json_ready(link):
    add_target(link, TARGET_A, 1, 2, config=b"a\x00b")
    data = discover(link.endpoint(HOST_MAC), FAST)[0].as_dict()
    text = json.dumps(data)
    for key in ("mac", "shelf", "slot", "bufcnt", "firmware", "max_sectors", "config", "model", "serial", "capacity", "lba48"):
        assert key in data
    assert data["mac"] == "02:00:00:00:00:0a" and data["config_hex"] == "610062"
    assert json.loads(text)["capacity"] == 131072


# --- addressing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, spec",
    [
        ("eth0", TargetSpec("eth0")),
        ("aoec0h:1.2", TargetSpec("aoec0h", 1, 2)),
        ("aoec0h:0.0", TargetSpec("aoec0h", 0, 0)),
        ("aoec0h:65534.254", TargetSpec("aoec0h", 65534, 254)),
        ("aoec0h:0x10.0x2", TargetSpec("aoec0h", 16, 2)),
    ],
)
def test_parse_target(text, spec):
    assert parse_target(text) == spec
    assert str(spec) == (text if ":" not in text else f"{spec.iface}:{spec.shelf}.{spec.slot}")


@pytest.mark.parametrize(
    "text, hint",
    [
        ("", "empty"),
        (":1.2", "not an interface name"),
        ("eth0:", "SHELF.SLOT"),
        ("eth0:1", "SHELF.SLOT"),
        ("eth0:1.", "not a number"),
        ("eth0:a.2", "not a number"),
        ("eth0:1.-2", "not a number"),
        ("eth0:65535.1", "out of range"),
        ("eth0:1.255", "out of range"),
        ("eth0:1.2.3", "not a number"),
        ("a-very-long-interface-name:1.2", "not an interface name"),
        ("eth 0:1.2", "not an interface name"),
    ],
)
def test_parse_target_rejects_bad_syntax(text, hint):
    with pytest.raises(UsageError) as info:
        parse_target(text)
    assert hint in str(info.value) and "\n" not in str(info.value)


def test_resolve_the_only_target(link):
    add_target(link, TARGET_A, 1, 2)
    record = resolve(TargetSpec("mem0"), link.endpoint(HOST_MAC), FAST)
    assert (record.mac, record.shelf, record.slot, record.capacity) == (TARGET_A, 1, 2, 131072)


def test_resolve_refuses_to_guess_between_targets(link):
    add_target(link, TARGET_A, 1, 2)
    add_target(link, TARGET_B, 1, 3)
    with pytest.raises(UsageError) as info:
        resolve(TargetSpec("mem0"), link.endpoint(HOST_MAC), FAST)
    text = str(info.value)
    assert "2 AoE targets" in text and "1.2 (02:00:00:00:00:0a)" in text and "1.3 (02:00:00:00:00:0b)" in text
    assert "--target mem0:SHELF.SLOT" in text


def test_resolve_a_named_target_among_several(link):
    add_target(link, TARGET_A, 1, 2)
    add_target(link, TARGET_B, 1, 3)
    record = resolve(TargetSpec("mem0", 1, 3), link.endpoint(HOST_MAC), FAST)
    assert record.mac == TARGET_B


def test_resolve_nothing_answers(link):
    with pytest.raises(TargetUnreachable) as info:
        resolve(TargetSpec("mem0"), link.endpoint(HOST_MAC), 0.1)
    assert info.value.exit_status == 3
    assert "no AoE target answered" in str(info.value) and "check that" in str(info.value)


def test_resolve_named_target_missing_lists_the_others(link):
    add_target(link, TARGET_A, 1, 2)
    with pytest.raises(TargetUnreachable) as info:
        resolve(TargetSpec("mem0", 5, 5), link.endpoint(HOST_MAC), FAST)
    text = str(info.value)
    assert "target 5.5 did not answer on mem0" in text and "1.2 (02:00:00:00:00:0a)" in text
    assert "check that it exports shelf 5 slot 5" in text and "\n" not in text


def test_open_target_closes_the_transport_on_failure(link):
    endpoints = []

    def factory(iface):
        endpoint = link.endpoint(HOST_MAC, name=iface)
        endpoints.append(endpoint)
        return endpoint

    with pytest.raises(TargetUnreachable):
        open_target("mem0:1.2", 0.1, transport_factory=factory)
    assert endpoints[0].closed
    add_target(link, TARGET_A, 1, 2)
    transport, record = open_target("mem0:1.2", FAST, transport_factory=factory)
    assert not transport.closed and record.mac == TARGET_A
    transport.close()


# --- the command line ------------------------------------------------------------


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "aoeconform", *args], capture_output=True, text=True, timeout=timeout)


def test_cli_missing_iface_is_a_usage_error():
    result = run_cli("discover")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--iface" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_nonexistent_interface():
    result = run_cli("discover", "--iface", "aoecnosuch9")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "aoecnosuch9" in lines[0] and "does not exist" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_bad_timeout():
    result = run_cli("discover", "--iface", "lo", "--timeout", "0")
    assert result.returncode == 2 and "--timeout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def memory_raw_transport(monkeypatch, link):
    """`aoeconform discover` in this process, its raw socket replaced by a MemoryLink endpoint."""
    import aoeconform.transport.raw as raw_module

    monkeypatch.setattr(raw_module, "RawTransport", lambda iface: link.endpoint(HOST_MAC, name=iface))
    return link


def test_cli_table(memory_raw_transport, capsys):
    add_target(memory_raw_transport, TARGET_A, 1, 2, config=b"lab disk")
    assert cli_main(["discover", "--iface", "mem0", "--timeout", str(FAST)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["MAC", "SHELF.SLOT", "BUFCNT", "FIRMWARE", "SECTORS/FRAME", "CONFIG", "MODEL", "SERIAL", "CAPACITY"]
    row = out[1]
    for cell in ("02:00:00:00:00:0a", "1.2", "16", "0x4019 F1", "lab disk", "Fake AoE disk", "1.2:fake", "131072 sectors (64.0 MiB)"):
        assert cell in row


def test_cli_json(memory_raw_transport, capsys):
    add_target(memory_raw_transport, TARGET_A, 1, 2)
    assert cli_main(["discover", "--iface", "mem0", "--timeout", str(FAST), "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert (record["mac"], record["shelf"], record["slot"], record["bufcnt"], record["firmware"]) == ("02:00:00:00:00:0a", 1, 2, 16, 0x4019)
    assert (record["max_sectors"], record["config"], record["model"], record["serial"], record["capacity"]) == (
        2, "", "Fake AoE disk", "1.2:fake", 131072)


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_no_targets_exits_3(memory_raw_transport, capsys, as_json):
    args = ["discover", "--iface", "mem0", "--timeout", "0.1"] + (["--json"] if as_json else [])
    assert cli_main(args) == 3
    captured = capsys.readouterr()
    assert "no AoE targets answered on mem0" in captured.err
    assert captured.out.strip() == ("[]" if as_json else "")


def test_cli_notes_ignored_replies(memory_raw_transport, capsys):
    add_target(memory_raw_transport, TARGET_A, 1, 2, reply_address=(0xFFFF, 0xFF))
    assert cli_main(["discover", "--iface", "mem0", "--timeout", "0.2"]) == 3
    err = capsys.readouterr().err
    assert "ignored a reply: 02:00:00:00:00:0a answered as 65535.255" in err


# --- against vblade (root) -------------------------------------------------------


def _discover_vblade(lab, mtu):
    assert lab.mtu == mtu
    result = run_cli("discover", "--iface", lab.host_if, "--json", "--timeout", "1")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == 1, records
    r = records[0]
    assert (r["shelf"], r["slot"]) == (lab.shelf, lab.slot)
    assert r["mac"] == ":".join(f"{b:02x}" for b in lab.target_mac)
    assert r["capacity"] == lab.image_size // 512 == 131072
    assert r["max_sectors"] == (mtu - 36) // 512
    assert (r["bufcnt"], r["firmware"], r["model"], r["firmware_rev"]) == (16, 0x4019, "Coraid EtherDrive vblade", "V25")
    assert r["serial"].startswith(f"{lab.shelf}.{lab.slot}:") and r["lba48"] is True
    return r


@pytest.mark.root
@pytest.mark.vblade
def test_cli_discovers_vblade_at_mtu_1500(vblade_lab):
    assert _discover_vblade(vblade_lab, 1500)["max_sectors"] == 2


@pytest.mark.root
@pytest.mark.vblade
def test_cli_discovers_vblade_at_mtu_9000(vblade_lab_jumbo):
    assert _discover_vblade(vblade_lab_jumbo, 9000)["max_sectors"] == 17


@pytest.mark.root
@pytest.mark.vblade
def test_resolve_vblade_by_address_and_miss(vblade_lab):
    transport, record = open_target(f"{vblade_lab.host_if}:{vblade_lab.shelf}.{vblade_lab.slot}", 0.5)
    transport.close()
    assert record.capacity == 131072
    with pytest.raises(TargetUnreachable) as info:
        open_target(f"{vblade_lab.host_if}:9.9", 0.3)
    assert f"{vblade_lab.shelf}.{vblade_lab.slot} (" in str(info.value)
