"""One conversation with a target, for every runner (between ``transport``/``wire``
and the scenario engine, the fuzzer and ``replay``).

- ``facts``: ``TargetFacts``, what is known about a target (discovery, the
  scenario engine's probe, the initiator and the fuzzer share it)
- ``requests``: the frames a session sends on its own behalf, built with the codec
- ``state``: ``TargetState``, the config string, Mac Mask list and reservation to put back
- ``link``: how a session reaches its target; adaptive timeouts from ``rtt``
- ``rtt``: the Linux driver's round-trip estimator
- ``restart``: what ``--restart-cmd`` means
- ``session``: ``Session``, exchange, liveness probe, restart, snapshot and restore
"""

from .facts import TargetFacts, frame_sectors
from .link import AdaptiveTimeout, Link, TransportLink
from .restart import RESTART_READY_SECONDS, RestartFailed, restart_command
from .session import UNANSWERED, Session
from .state import TargetState

__all__ = [
    "AdaptiveTimeout",
    "Link",
    "RESTART_READY_SECONDS",
    "RestartFailed",
    "Session",
    "TargetFacts",
    "TargetState",
    "TransportLink",
    "UNANSWERED",
    "frame_sectors",
    "restart_command",
]
