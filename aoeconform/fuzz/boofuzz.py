"""aoeconform's AoE knowledge for boofuzz users.

A boofuzz ``Session`` keeps its web UI, its test-case database and its
crash handling; this module gives it what it lacks for AoE:

* ``define_requests(info)``: boofuzz request definitions (``s_initialize``
  blocks) for the four AoE commands, fields named as in the spec;
* ``AoeConnection``: a boofuzz target connection over any aoeconform
  transport (a raw socket on a lab interface, or the in-memory link of the
  reference target), which makes every fuzzed frame safe the same way
  ``aoeconform fuzz`` does (no disk writes outside the allowed window, no
  Mac Mask list or reservation that locks the host out, nothing beyond the
  MTU) and collects every reply that carries the request's tag;
* ``AoeOracle``: a post-test-case callback that judges those replies with
  the fuzzer's oracles and logs each broken rule of the protocol notes
  (§10) as a boofuzz failure, so it lands in boofuzz's database and UI.

``docs/boofuzz.md`` shows a whole session. boofuzz is an optional extra
(``pip install 'aoeconform[fuzz]'``); importing this module needs it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Optional

import boofuzz
from boofuzz import s_block, s_byte, s_bytes, s_dword, s_initialize, s_size, s_static, s_word
from boofuzz.connections import ITargetConnection

from aoeconform.transport.base import Transport
from aoeconform.wire import ConfigArg, Frame, Header
from aoeconform.wire.constants import CMD_QUERY_CONFIG, ETH_P_AOE

from aoeconform.session.facts import TargetFacts

from .context import WritePolicy
from .mutate import sanitize
from .oracle import KINDS, check_reply, expects_reply

#: the request names define_requests() gives boofuzz
REQUESTS = ("aoe-ata", "aoe-config", "aoe-mask", "aoe-reserve")
_AOE_TYPE = ETH_P_AOE.to_bytes(2, "big")


def _header(info: TargetFacts, command: int, tag: int) -> None:
    """Ethernet and AoE header fields (§2); the addresses stay fixed so every
    case reaches the target, the rest is fuzzable."""
    s_static(info.mac, name="dst")
    s_static(info.host_mac, name="src")
    s_static(_AOE_TYPE, name="ethertype")
    with s_block("header"):
        s_byte(0x10, name="ver_flags")
        s_byte(0, name="error")
        s_word(info.shelf, name="major", endian=">")
        s_byte(info.slot, name="minor")
        s_byte(command, name="command", fuzzable=False)
        s_dword(tag, name="tag", endian=">")


def define_requests(info: TargetFacts) -> tuple[str, ...]:
    """Define one boofuzz request per AoE command for the target ``info``
    describes; returns their names (``s_get(name)`` fetches one). boofuzz keeps
    requests in one global registry: defining them again replaces them."""
    for name in REQUESTS:
        boofuzz.blocks.REQUESTS.pop(name, None)
    s_initialize("aoe-ata")
    _header(info, 0, 0x0A000001)
    with s_block("ata"):
        s_byte(0x40, name="aflags")
        s_byte(0, name="err_feature")
        s_byte(1, name="sector_count")
        s_byte(0x24, name="cmd_status")  # READ SECTORS EXT; writes are made reads unless allowed
        s_bytes(bytes(6), name="lba", size=6)
        s_word(0, name="reserved", endian=">")
    s_initialize("aoe-config")
    _header(info, 1, 0x0A000002)
    with s_block("config"):
        s_word(0, name="bufcnt", endian=">")
        s_word(0, name="firmware", endian=">")
        s_byte(0, name="sector_count")
        s_byte(0x10, name="ver_ccmd")
        s_size("config_string", length=2, endian=">", name="config_length", fuzzable=True)
        with s_block("config_string"):
            s_bytes(b"aoeconform", name="config", max_len=1024)
    s_initialize("aoe-mask")
    _header(info, 2, 0x0A000003)
    with s_block("mask"):
        s_byte(0, name="reserved")
        s_byte(0, name="mcmd")
        s_byte(0, name="merror")
        s_byte(1, name="dir_count")
        s_byte(0, name="directive_reserved")
        s_byte(0, name="dcmd")
        s_static(info.host_mac, name="directive_mac")
    s_initialize("aoe-reserve")
    _header(info, 3, 0x0A000004)
    with s_block("reserve"):
        s_byte(0, name="rcmd")
        s_byte(1, name="nmacs")
        s_static(info.host_mac, name="reserve_mac")
    return REQUESTS


class AoeConnection(ITargetConnection):
    """A boofuzz connection that sends each case as one Ethernet frame over an
    aoeconform transport and gathers the replies to it (same tag)."""

    def __init__(self, transport: Transport, info: TargetFacts, policy: Optional[WritePolicy] = None,
                 timeout: float = 0.25) -> None:
        self.transport = transport
        self.target_info = info
        self.policy = policy or WritePolicy()
        self.timeout = timeout
        #: the frame as sent (after the safety rewrite) and the replies that carry its tag
        self.last_request = b""
        self.replies: list[bytes] = []
        #: AoE frames to us that answered no request of this connection
        self.strays: list[bytes] = []
        self.collected = True

    def open(self) -> None:
        pass  # the transport is open for the connection's whole life

    def close(self) -> None:
        pass

    @property
    def info(self) -> str:
        """What boofuzz shows for the connection."""
        return f"AoE {self.target_info.address} ({self.target_info.mac.hex(':')}) on {self.transport.name}"

    def send(self, data) -> int:
        raw = bytes(sanitize(bytearray(data), self.target_info, self.policy))
        # what came late for earlier cases must not pass for this one's reply
        # (boofuzz sends most cases with the same tag)
        while (late := self.transport.recv(0)) is not None:
            self.strays.append(bytes(late))
        self.last_request, self.replies, self.collected = raw, [], False
        self.transport.send(raw)
        return len(data)

    def recv(self, max_bytes: int) -> bytes:
        """The first reply to the last request (b"" when none came in time)."""
        if not self.collected:
            self.collect()
        return self.replies[0] if self.replies else b""

    def collect(self) -> list[bytes]:
        """Wait up to ``timeout`` for a reply to the last request, then take any
        further copies already queued (a duplicate reply is a finding too)."""
        self.collected = True
        tag = self.last_request[20:24]
        until = time.monotonic() + self.timeout
        while True:
            left = until - time.monotonic()
            frame = self.transport.recv(max(0.0, left) if not self.replies else 0.0)
            if frame is None:
                if self.replies or left <= 0:
                    break
                continue
            frame = bytes(frame)
            if frame[12:14] != _AOE_TYPE:
                continue
            if frame[20:24] == tag and len(frame) >= 24:
                self.replies.append(frame)
            else:
                self.strays.append(frame)
        return self.replies

    def alive(self) -> bool:
        """A Query Config read answered: the health check after a silent case."""
        tag = int(time.monotonic_ns() & 0x7FFFFFFF) | 1
        t = self.target_info
        probe = Frame(Header(dst=t.mac, src=t.host_mac, shelf=t.shelf, slot=t.slot, command=CMD_QUERY_CONFIG, tag=tag),
                      ConfigArg()).encode(pad=True)
        saved = self.last_request, self.replies
        try:
            for _ in range(3):
                self.last_request, self.replies = probe, []
                self.transport.send(probe)
                if self.collect():
                    return True
            return False
        finally:
            self.last_request, self.replies = saved
            self.collected = True



class AoeOracle:
    """A boofuzz post-test-case callback: every rule the replies to the case
    break, logged with ``log_fail`` as "rule N (kind): detail".

    ``found`` counts violations by kind; ``first`` keeps the first case index
    at which each kind was seen."""

    __name__ = "aoeconform_oracle"  # boofuzz names the test step after the callback

    def __init__(self, connection: AoeConnection) -> None:
        self.connection = connection
        self.found: Counter = Counter()
        self.first: dict[str, int] = {}

    def _fail(self, logger, session, kind: str, detail: str) -> None:
        rule, text = KINDS[kind]
        self.found[kind] += 1
        self.first.setdefault(kind, getattr(session, "total_mutant_index", 0))
        logger.log_fail(f"rule {rule} ({kind}): {text}: {detail}")

    def __call__(self, target=None, fuzz_data_logger=None, session=None, *args, **kwargs) -> None:
        conn, info = self.connection, self.connection.target_info
        if not conn.collected:  # boofuzz did not ask for a reply (receive_data_after_fuzz off)
            conn.collect()
        request, replies = conn.last_request, list(conn.replies)
        if not replies:
            if expects_reply(request, info):
                if conn.alive():
                    self._fail(fuzz_data_logger, session, "no-reply", f"command {request[19]} unanswered")
                else:
                    self._fail(fuzz_data_logger, session, "unresponsive", "Query Config unanswered after this case")
            else:
                fuzz_data_logger.log_pass("no reply, and none is required")
            return
        if len(replies) > 1:
            self._fail(fuzz_data_logger, session, "duplicate-reply", f"{len(replies)} replies with tag {request[20:24].hex()}")
        bad = False
        for reply in replies:
            for anomaly in check_reply(request, reply, info):
                bad = True
                self._fail(fuzz_data_logger, session, anomaly.kind, anomaly.detail)
        if not bad:
            fuzz_data_logger.log_pass("reply obeys every rule the oracles check")


def open_interface(text: str) -> tuple[Transport, TargetFacts]:
    """``IF[:S.N]``: a raw socket on the interface and what discovery learnt of
    the target there (as ``aoeconform fuzz --target`` does)."""
    from aoeconform.initiator.addressing import open_target

    return open_target(text, timeout=2.0, identify=True)


def session(info: TargetFacts, transport: Transport, *, policy: Optional[WritePolicy] = None, timeout: float = 0.25,
            **options) -> tuple["boofuzz.Session", AoeOracle]:
    """A boofuzz Session wired to the target through ``AoeConnection`` with the
    oracle as its post-test-case callback; ``options`` go to ``boofuzz.Session``
    (e.g. ``web_port``, ``db_filename``, ``index_end``, ``fuzz_loggers``)."""
    connection = AoeConnection(transport, info, policy, timeout)
    oracle = AoeOracle(connection)
    options.setdefault("reuse_target_connection", True)
    # a rule broken is a finding to log, not a crashed process to wait for
    options.setdefault("restart_sleep_time", 0)
    options.setdefault("keep_web_open", False)  # return when the cases are done
    options.setdefault("receive_data_after_each_request", True)
    fuzzer = boofuzz.Session(target=boofuzz.Target(connection=connection), post_test_case_callbacks=[oracle], **options)
    return fuzzer, oracle
