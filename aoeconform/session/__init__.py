"""One conversation with a target, for every runner.

- ``facts``: ``TargetFacts``, what is known about a target (discovery,
  the scenario engine's probe, the initiator and the fuzzer share it)
"""

from .facts import TargetFacts, frame_sectors

__all__ = ["TargetFacts", "frame_sectors"]
