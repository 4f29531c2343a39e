"""The reference initiator (issue 4): Linux-style retransmission, congestion
window and tags, as a pure engine (``engine``) and a blocking shell over any
transport (``driver``), with discovery, ``--target`` addressing and long
pipelined transfers (``transfer``)."""

from .addressing import TargetSpec, open_target, parse_target, resolve
from .discovery import DiscoveryResult, discover
from .driver import HARNESS_TIMERS, LINUX_TIMERS, TIMERS, Initiator, frame_sectors
from .engine import (
    AoEErrorReply,
    AtaError,
    InitiatorEngine,
    InitiatorError,
    IoRequest,
    RuntReply,
    TargetDead,
)
from aoeconform.session.rtt import RttEstimator
from .tags import TagAllocator
from .transfer import read_range, write_range
from .window import CongestionWindow

__all__ = [
    "AoEErrorReply",
    "AtaError",
    "CongestionWindow",
    "DiscoveryResult",
    "HARNESS_TIMERS",
    "Initiator",
    "InitiatorEngine",
    "InitiatorError",
    "IoRequest",
    "LINUX_TIMERS",
    "RttEstimator",
    "RuntReply",
    "TIMERS",
    "TagAllocator",
    "TargetDead",
    "TargetSpec",
    "discover",
    "frame_sectors",
    "open_target",
    "parse_target",
    "read_range",
    "resolve",
    "write_range",
]
