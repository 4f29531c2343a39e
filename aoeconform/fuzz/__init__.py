"""The fuzzers: structure-aware mutation over the wire codec, with oracles,
health checks, a restart hook and shrinking of whatever they find.

- ``seeds``: valid requests to start from (generated, and corpora/)
- ``mutate``: field and byte mutations; one seeded generator per case
- ``oracle``: what any reply must obey, and when a reply is owed
- ``engine``: the pipelined loop, health checks, restarts, findings
- ``shrink``: replay, ddmin over sequences, minimising one frame
- ``findings``: finding files (JSON with hex frames, pcaps)
"""

from .context import WritePolicy
from .engine import Fuzzer, FuzzResult, replay_finding
from .findings import Finding, load, save
from .mutate import Case, CaseGenerator
from .seeds import COMMAND_CHOICES, Seed, generated_seeds, load_corpus

__all__ = [
    "WritePolicy",
    "Fuzzer",
    "FuzzResult",
    "replay_finding",
    "Finding",
    "load",
    "save",
    "Case",
    "CaseGenerator",
    "COMMAND_CHOICES",
    "Seed",
    "generated_seeds",
    "load_corpus",
]
