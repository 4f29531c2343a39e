"""A vendor's own AoE checks, written as ordinary pytest tests.

Run them against your target, the bundled reference target, or several::

    pytest docs/examples/test_vendor_example.py --aoe-target eth1:7.3
    pytest docs/examples/test_vendor_example.py --aoe-bundled
    pytest docs/examples/test_vendor_example.py --aoe-bundled --aoe-quirk flush-status-zero   # fails, readably

Each test builds a request with aoeconform's codec (``aoeconform.wire``),
sends it through the ``aoe_target`` fixture and judges the reply with the
same expectation language the YAML suites use (``docs/scenario-format.md``):
a mismatch fails with one line per field, expected against actual.
"""

from aoeconform.wire import AtaArg, ConfigArg, Frame
from aoeconform.wire.constants import (
    ATA_FLUSH_CACHE,
    ATA_IDENTIFY_DEVICE,
    ATA_STATUS_DRDY,
    ATA_STATUS_FAILURE_MASK,
    CMD_ATA,
    CMD_QUERY_CONFIG,
)


def test_flush_cache_reports_drive_ready(aoe_target):
    """FLUSH CACHE succeeds with DRDY set and no failure bit (what our hosts' drivers check)."""
    request = Frame(aoe_target.header(CMD_ATA), AtaArg(cmd_status=ATA_FLUSH_CACHE))
    exchange = aoe_target.exchange(request)
    aoe_target.expect(exchange, {
        "header": {"error_flag": False, "tag": "same"},
        "ata": {"cmd_status": {"bits_set": ATA_STATUS_DRDY, "bits_clear": ATA_STATUS_FAILURE_MASK}},
    })


def test_identify_capacity_is_readable(aoe_target):
    """IDENTIFY DEVICE reports a capacity, and the last sector it names can be read."""
    identify = aoe_target.exchange(Frame(aoe_target.header(CMD_ATA),
                                         AtaArg(sector_count=1, cmd_status=ATA_IDENTIFY_DEVICE, lba=0xA0 << 24)))
    verdict = aoe_target.expect(identify, {"reply": {"ata": {"cmd_status": {"bits_clear": ATA_STATUS_FAILURE_MASK}},
                                                     "identify": {"lba48_capacity": {"min": 1}}},
                                           "capture": {"identify_block": "data"}})
    assert len(verdict.captured["identify_block"]) >= 512


def test_query_config_answers_with_our_tag(aoe_target):
    """Query Config is answered from the target's address, with the tag we sent."""
    exchange = aoe_target.exchange(Frame(aoe_target.header(CMD_QUERY_CONFIG), ConfigArg()))
    aoe_target.expect(exchange, {
        "header": {"response": True, "error_flag": False, "tag": "same", "src": "$target_mac",
                   "shelf": aoe_target.shelf, "slot": aoe_target.slot},
        "config": {"bufcnt": {"min": 1}},
    })
