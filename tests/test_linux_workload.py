"""The guest's workload and the wire counts, without a guest: on a file and on frames built with the codec."""

import hashlib

import pytest

from aoeconform.lab.wirestats import analyse, summarize
from aoeconform.lab.workload import ALIGN, WorkloadSpec, expected_region, random_writes, run_workload
from aoeconform.wire import AtaArg, ConfigArg, Frame, Header
from aoeconform.wire.constants import CMD_ATA, CMD_QUERY_CONFIG, FLAG_RESPONSE

SPEC = WorkloadSpec(seed=7, offset=8192, size=256 << 10, block=32 << 10, random_writes=20)


def test_expected_region_is_a_function_of_the_seed():
    assert expected_region(SPEC) == expected_region(WorkloadSpec(**SPEC.__dict__))
    assert expected_region(SPEC) != expected_region(WorkloadSpec(**{**SPEC.__dict__, "seed": 8}))


def test_random_writes_stay_aligned_inside_the_region():
    writes = random_writes(SPEC)
    assert len(writes) == 20
    for start, data in writes:
        assert start % ALIGN == 0 and len(data) % ALIGN == 0
        assert 0 <= start and start + len(data) <= SPEC.size and len(data) <= SPEC.block


@pytest.mark.parametrize("bad", [{"size": 1000}, {"offset": 100}, {"block": 0}, {"random_writes": -1}])
def test_bad_specs_are_refused(bad):
    with pytest.raises(ValueError):
        WorkloadSpec(**{**SPEC.__dict__, **bad}).check()


def test_region_past_the_end_is_refused():
    with pytest.raises(ValueError, match="passes the device's end"):
        SPEC.check(capacity_bytes=SPEC.offset + SPEC.size - ALIGN)


def test_workload_on_a_file_reads_back_what_it_wrote(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(SPEC.offset + SPEC.size + 4096))
    result = run_workload(str(disk), SPEC)
    assert result.ok, result
    assert [p["name"] for p in result.phases] == ["seq", "random", "verify"]
    stored = disk.read_bytes()[SPEC.offset:SPEC.offset + SPEC.size]
    assert hashlib.sha256(stored).hexdigest() == result.expected_sha256 == result.read_sha256


def test_a_sector_changed_behind_the_workload_is_found(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(SPEC.offset + SPEC.size))
    bad_sector = (SPEC.offset + 3 * 4096) // 512

    def corrupt(phase):
        if phase == "verify":  # a target that lost one acknowledged write
            with open(disk, "r+b") as f:
                f.seek(bad_sector * 512)
                f.write(b"\xa5" * 512)

    result = run_workload(str(disk), SPEC, on_phase=corrupt)
    assert not result.ok
    assert result.mismatch_count == 1 and result.mismatched_sectors == [bad_sector]


# -- wire counts -----------------------------------------------------------------

LINUX = bytes.fromhex("020000000011")
TARGET = bytes.fromhex("020000000022")


def request(tag, lba, count=2, write=False):
    header = Header(dst=TARGET, src=LINUX, shelf=1, slot=2, command=CMD_ATA, tag=tag)
    arg = AtaArg(aflags=0x41 if write else 0x40, sector_count=count, cmd_status=0x34 if write else 0x24, lba=lba,
                 data=bytes(512 * count) if write else b"")
    return Frame(header=header, arg=arg).encode(pad=True)


def reply(tag, lba, count=2, write=False, shelf=1, slot=2):
    header = Header(dst=LINUX, src=TARGET, shelf=shelf, slot=slot, command=CMD_ATA, tag=tag, flags=FLAG_RESPONSE)
    arg = AtaArg(aflags=0x41 if write else 0x40, cmd_status=0x40, lba=lba, data=b"" if write else bytes(512 * count))
    return Frame(header=header, arg=arg).encode(pad=True)


def test_summarize_reads_the_ata_fields():
    s = summarize(request(5, 1 << 40, 3, write=True))
    assert (s.tag, s.lba, s.sector_count, s.write, s.response) == (5, 1 << 40, 3, True, False)
    assert summarize(b"\x00" * 60) is None


def test_retransmissions_late_replies_and_duplicates():
    # tag 1 is lost on the way back and resent as tag 2; the reply to 1 comes late
    initiator = [
        (0.0, request(1, 0)),
        (0.1, request(2, 0)),      # retransmission: no reply yet
        (0.2, reply(2, 0)),
        (0.3, reply(1, 0)),        # late
        (0.4, request(3, 0)),      # the same sectors again, after an answer: a new request
        (0.5, reply(3, 0)),
        (0.6, request(4, 8, write=True)),
        (0.7, reply(4, 8, write=True, shelf=0xFFFF)),
        (0.8, reply(99, 8)),       # a tag never sent
    ]
    target = [(0.0, request(1, 0)), (0.1, request(2, 0)), (0.4, request(3, 0)), (0.6, request(4, 8, write=True)),
              (0.61, request(4, 8, write=True))]   # a copy made by the network
    counts = analyse(initiator, target)
    assert counts.requests == 4 and counts.instances == 3
    assert counts.retransmissions == 1
    assert counts.late_replies == 1
    assert counts.unmatched_replies == 1
    assert counts.wildcard_replies == 1
    assert counts.requests_at_target == 5
    assert counts.duplicates_delivered == 2   # tag 2 (same instance as 1) and the copy of 4
    assert counts.write_requests == 1 and counts.max_payload == 1024


def test_config_replies_are_not_counted_as_unmatched():
    header = Header(dst=b"\xff" * 6, src=LINUX, shelf=0xFFFF, slot=0xFF, command=CMD_QUERY_CONFIG, tag=9)
    query = Frame(header=header, arg=ConfigArg()).encode(pad=True)
    answer = Frame(header=Header(dst=LINUX, src=TARGET, shelf=1, slot=2, command=CMD_QUERY_CONFIG, tag=9, flags=FLAG_RESPONSE),
                   arg=ConfigArg()).encode(pad=True)
    counts = analyse([(0, query), (0.1, answer)])
    assert counts.config_requests == 1 and counts.unmatched_replies == 0 and counts.retransmissions == 0
