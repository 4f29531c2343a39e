"""The target requirements the suites trace to, numbered as in the project's
protocol notes: the rows of the report's traceability matrix.

Each entry is (spec section, level, a short title written for this project).
Levels follow the notes' "Levels": the spec's text, data, liveness and
addressing make a rule MUST; evidence from implementations alone makes it
SHOULD unless the rule says otherwise.
"""

from typing import Iterable, Optional

RULES: dict[int, tuple[str, str, str]] = {
    1: ("2.1", "MUST", "act on AoE EtherType frames only"),
    2: ("2.3", "MUST", "never answer a frame that has R set"),
    3: ("2.1", "MUST", "reply to the requester's MAC from the target's own MAC"),
    4: ("2.7", "MUST", "return the tag bit for bit"),
    5: ("2.6", "MUST", "return the request's command code"),
    6: ("2.3", "MUST", "R set in replies; E set exactly when Error means something"),
    7: ("2.2", "MUST", "Ver 1 in every reply, unsolicited ones too"),
    8: ("2.4", "SHOULD", "Error byte zero when E is clear"),
    9: ("1", "MUST", "reserved and MBZ bits sent as zero, ignored on receipt"),
    10: ("2.5", "MUST", "answer own shelf/slot or the wildcards, each independently"),
    11: ("2.5", "MUST", "real shelf and slot in every reply"),
    12: ("2.2", "MUST", "other versions: Error 5, or at least no side effect"),
    13: ("2.6", "MUST", "unknown command: Error 1"),
    14: ("2.6", "MUST", "vendor commands implemented or Error 1, never a crash"),
    15: ("impl", "MUST", "truncated argument: no crash, no side effect"),
    16: ("Ethernet", "MUST", "replies padded to 60 bytes; lengths from fields"),
    17: ("3.2", "MUST", "no frame larger than the MTU"),
    18: ("1.1", "MUST", "duplicated requests safe, equivalent replies"),
    19: ("3.2", "MUST", "Buffer Count requests at once without loss"),
    20: ("impl", "MUST", "concurrency never corrupts overlapping I/O"),
    21: ("3.1", "MUST", "READ returns exactly the requested sectors, status 0x40"),
    22: ("3.1", "MUST", "WRITE persists the data, status 0x40"),
    23: ("3.1", "MUST", "short write payload rejected, nothing written"),
    24: ("3.1", "MUST", "sector count above the maximum rejected, no partial I/O"),
    25: ("3.1", "MUST", "I/O past the end: ERR and IDNF, nothing changed"),
    26: ("3.1", "MUST", "LBA little-endian; 28-bit ignores lba3's high nibble"),
    27: ("3.1", "MUST", "48-bit commands use all 48 bits"),
    28: ("3.1", "MUST", "IDENTIFY agrees with the readable capacity"),
    29: ("3.1", "MUST", "unsupported opcode: ERR and ABRT, no side effect"),
    30: ("3.1", "SHOULD", "CHECK POWER MODE, where implemented: count 0xFF, status 0x40"),
    31: ("3.1", "SHOULD", "FLUSH CACHE succeeds with DRDY"),
    32: ("3.1", "MUST", "read-only export refuses writes, media unchanged"),
    33: ("3.1", "MUST", "asynchronous writes land unless an error is signalled"),
    34: ("3.1", "SHOULD", "reserved ATA bytes ignored, or the request refused with Error 2"),
    35: ("3.2", "MUST", "config replies fill every field"),
    36: ("3.2", "MUST", "CCmd 0 returns the current string"),
    37: ("3.2", "MUST", "CCmd 1 answers only an exact match"),
    38: ("3.2", "MUST", "CCmd 2 answers only a prefix match"),
    39: ("3.2", "MUST", "CCmd 3 sets an empty string, refuses a different one; the same: success or Error 4"),
    40: ("3.2", "MUST", "CCmd 4 sets unconditionally"),
    41: ("3.2", "MUST", "CCmd 5-15: no change, Error 2 or Error 1"),
    42: ("3.2", "MUST", "oversized or lying lengths change nothing, store no stale bytes"),
    43: ("3.2", "MUST", "config string is opaque binary up to 1024 bytes"),
    44: ("3.2", "MUST", "concurrent sets: one wins whole"),
    45: ("3.2", "MUST", "a broadcast query gets one reply per target"),
    46: ("impl", "SHOULD", "unsolicited config reply at start-up"),
    47: ("3.3", "MUST", "MCmd 0 returns the list"),
    48: ("3.3", "MUST", "MCmd 1 applies directives in order"),
    49: ("3.3", "MUST", "first bad directive: MError and its index, earlier ones kept"),
    50: ("3.3", "MUST", "unknown MCmd: Error 2"),
    51: ("3.3", "MUST", "non-empty list: unlisted MACs get nothing"),
    52: ("3.3", "MUST", "empty list: everyone allowed"),
    53: ("3.3", "MUST", "Dir Count beyond the frame rejected"),
    54: ("3.4", "MUST", "RCmd 0 returns the list"),
    55: ("3.4", "MUST", "RCmd 1 only when free or already listed, else Error 6"),
    56: ("3.4", "MUST", "RCmd 2 sets unconditionally; no MACs releases"),
    57: ("3.4", "MUST", "while reserved, unlisted READ/WRITE get Error 6"),
    58: ("3.4", "MUST", "unknown RCmd or NMacs beyond the frame: Error 2"),
}


#: reply fields whose every check belongs to one rule, whatever the case is about
#: (a wrong tag in the reply to a READ breaks rule 4, not the READ rule)
FIELD_RULES = {
    "header.tag": 4,
    "header.command": 5,
    "header.ver": 7,
    "header.shelf": 11,
    "header.slot": 11,
    "header.src": 3,
    "header.dst": 3,
    "config.bufcnt": 35,
    "config.firmware": 35,
    "config.sector_count": 35,
    "config.version": 35,
}


def field_rule(path: str, expected: str = "", actual: str = "") -> Optional[int]:
    """The rule a failing check of one reply field belongs to, or None when
    that depends on the case (then the step's or the case's rule is charged)."""
    if path.startswith("reply["):
        path = path.split(".", 1)[1] if "." in path else path
    if path == "frame.length":
        # a lower bound is about padding, an upper bound about the MTU
        return 16 if expected.startswith("≥") else 17 if expected.startswith("≤") else None
    if path in ("config.config", "config.config_length") and actual in ("", "0", "b''", "(empty)", "0 bytes"):
        return 35  # the reply left out the current string: rule 35, not the string's own rule
    return FIELD_RULES.get(path)


def charge(step_rules: Iterable[int], case_rules: Iterable[int], failed_checks: Optional[list]) -> Optional[int]:
    """The rule a failing step is charged to: the rule the step names; else the
    one rule every failing field check belongs to; else the case's headline rule.
    ``failed_checks`` is None when the failure is not about reply fields (an
    alternative of several, a timeout): then only the step or the case decides."""
    step_rules, case_rules = list(step_rules), list(case_rules)
    if step_rules:
        return step_rules[0]
    if failed_checks:
        owners = {field_rule(c.path, c.expected, c.actual) for c in failed_checks}
        if len(owners) == 1 and None not in owners:
            return owners.pop()
    return case_rules[0] if case_rules else None
