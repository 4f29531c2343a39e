"""Checking replies against what a case expects, field by field.

``evaluate(spec, replies, request, env)`` returns a ``Verdict``: passed or
not, every field that was checked with its expected and actual value, and
for ``any_of`` the verdict of each alternative. The engine decides how long
to wait; this module only judges what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from aoeconform.wire import DecodeError, Frame, Header
from aoeconform.wire.constants import ATA_HEADER_END, ETH_MIN_FRAME
from aoeconform.wire.header import mac_to_str

from .shadow import SECTOR, ShadowDisk
from .values import ValueError_, byte_value, describe_bytes, integer, mac_value

PREDICATE_KEYS = ("eq", "ne", "in", "not_in", "min", "max", "bits_set", "bits_clear", "contains", "not_contains", "length")

HEADER_INT = ("ver", "flags", "error", "shelf", "slot", "command", "tag", "mbz", "ethertype")
FIELD_KINDS = {
    "header": {**{n: "int" for n in HEADER_INT}, "response": "bool", "error_flag": "bool", "src": "mac", "dst": "mac"},
    "ata": {n: "int" for n in ("aflags", "err_feature", "sector_count", "cmd_status", "lba", "reserved")},
    "config": {**{n: "int" for n in ("bufcnt", "firmware", "sector_count", "ccmd", "version", "config_length")}, "config": "bytes"},
    "mask": {**{n: "int" for n in ("reserved", "mcmd", "merror", "dir_count")}, "directives": "directives", "macs": "maclist"},
    "reserve": {"rcmd": "int", "nmacs": "int", "macs": "maclist"},
    # the IDENTIFY DEVICE block carried as data by an ATA reply (rule 28)
    "identify": {"lba28_capacity": "int", "lba48_capacity": "int", "lba48_supported": "bool",
                 "lba48_enabled": "bool", "capabilities_lba": "bool"},
}
_ARG_CLASS = {"ata": "AtaArg", "config": "ConfigArg", "mask": "MacMaskArg", "reserve": "ReserveArg"}
_HEX_FIELDS = {"flags", "aflags", "err_feature", "cmd_status", "tag", "error", "mbz", "ethertype", "firmware"}


class CheckError(ValueError):
    """The expectation itself cannot be evaluated (a suite problem, reported as an error)."""


@dataclass
class Env:
    """What expectations may refer to."""

    variables: dict
    roles: dict  # role name -> MAC bytes
    seed: int = 0
    shadow: Optional[ShadowDisk] = None


@dataclass
class Request:
    """What was sent, for ``tag: same`` and ``data: {shadow: true}``."""

    raw: bytes
    tag: int
    lba: int = 0
    sectors: int = 0


@dataclass
class FieldCheck:
    path: str
    expected: str
    actual: str
    ok: bool

    def as_dict(self) -> dict:
        return {"field": self.path, "expected": self.expected, "actual": self.actual, "ok": self.ok}


@dataclass
class Verdict:
    ok: bool
    message: str = ""
    checks: list[FieldCheck] = field(default_factory=list)
    #: a reply was required and none came (the case outcome is then "timeout")
    no_reply: bool = False
    alternatives: list["Verdict"] = field(default_factory=list)
    captured: dict = field(default_factory=dict)

    def failures(self) -> list[FieldCheck]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict:
        out = {"ok": self.ok, "message": self.message, "checks": [c.as_dict() for c in self.checks]}
        if self.no_reply:
            out["no_reply"] = True
        if self.alternatives:
            out["alternatives"] = [a.as_dict() for a in self.alternatives]
        return out


# -- reading a reply -------------------------------------------------------------


class ReplyView:
    """A received frame, decoded as far as it goes."""

    def __init__(self, raw: bytes):
        self.raw = bytes(raw)
        self.header = Header.decode(self.raw)
        self.frame: Optional[Frame] = None
        self.decode_error: Optional[DecodeError] = None
        try:
            self.frame = Frame.decode(self.raw)
        except DecodeError as exc:
            self.decode_error = exc

    @property
    def data(self) -> bytes:
        """ATA data: bytes after offset 36; a frame of at most 60 bytes carries none
        (its tail is Ethernet padding, whatever its content)."""
        if len(self.raw) <= ETH_MIN_FRAME:
            return b""
        return self.raw[ATA_HEADER_END:]

    def field(self, section: str, name: str):
        if section == "header":
            h = self.header
            return {"response": h.response, "error_flag": h.error_flag, "mbz": h.mbz}.get(name, getattr(h, name, None))
        if self.frame is None:
            raise CheckError(f"reply cannot be decoded: {self.decode_error}")
        if section == "identify":
            return self._identify_field(name)
        arg: Any = self.frame.arg  # its class is checked by name just below
        if type(arg).__name__ != _ARG_CLASS[section]:
            raise CheckError(f"reply is command {self.header.command}, it has no {section} argument")
        if section == "config" and name == "config_length":
            return arg.config_length if arg.config_length is not None else len(arg.config)
        if section in ("mask", "reserve") and name == "macs":
            return [d.mac for d in arg.directives] if section == "mask" else list(arg.macs)
        if section == "mask" and name == "dir_count":
            return arg.dir_count if arg.dir_count is not None else len(arg.directives)
        if section == "reserve" and name == "nmacs":
            return arg.nmacs if arg.nmacs is not None else len(arg.macs)
        if section == "mask" and name == "directives":
            return [(d.dcmd, d.mac) for d in arg.directives]
        return getattr(arg, name)

    def _identify_field(self, name: str):
        from aoeconform.wire.identify import CAPABILITY_LBA, IDENTIFY_LEN, W_CAPABILITIES, IdentifyData

        if len(self.data) < IDENTIFY_LEN:
            raise CheckError(f"reply carries {len(self.data)} data bytes, not a 512-byte IDENTIFY block")
        block = IdentifyData.decode(self.data[:IDENTIFY_LEN])
        if name == "capabilities_lba":
            return bool(block.words[W_CAPABILITIES] & CAPABILITY_LBA)
        return getattr(block, name)

    def path(self, path: str):
        """A dotted path for captures: header.tag, ata.lba, config.config, data, frame.length."""
        if path == "data":
            return self.data
        if path == "frame.length":
            return len(self.raw)
        if path == "frame":
            return self.raw
        section, _, name = path.partition(".")
        if section not in FIELD_KINDS or name not in FIELD_KINDS[section]:
            raise CheckError(f"cannot capture {path!r}: name a reply field such as header.tag, ata.lba, config.config, data")
        value = self.field(section, name)
        if isinstance(value, list):
            return b"".join(v if isinstance(v, bytes) else v[1] for v in value)
        return value


# -- formatting --------------------------------------------------------------------


def show(value, name: str = "") -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if name in _HEX_FIELDS:
            return f"0x{value:02x}"
        return str(value) if -10 < value < 10 else f"{value} (0x{value:x})"
    if isinstance(value, (bytes, bytearray)):
        if len(value) == 6 and name in ("src", "dst", "mac"):
            return mac_to_str(bytes(value))
        return describe_bytes(bytes(value))
    if isinstance(value, list):
        return "[" + ", ".join(_show_item(v) for v in value) + "]"
    if value is None:
        return "(absent)"
    return str(value)


def _show_item(v) -> str:
    """A list entry: a MAC, a (DCmd, MAC) directive, or an unresolved expectation value."""
    if isinstance(v, bytes):
        return show(v, "mac")
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], bytes):
        return f"({v[0]}, {mac_to_str(v[1])})"
    return str(v)


# -- predicates --------------------------------------------------------------------


def _is_predicate(spec) -> bool:
    return isinstance(spec, Mapping) and bool(spec) and all(k in PREDICATE_KEYS for k in spec)


def _convert(kind: str, value, env: Env, what: str):
    if kind == "int":
        return integer(value, env.variables, what)
    if kind == "bool":
        if not isinstance(value, bool):
            raise CheckError(f"{what}: expected true or false, got {value!r}")
        return value
    if kind == "mac":
        return mac_value(value, env.roles, env.variables, what)
    if kind == "bytes":
        return byte_value(value, env.variables, seed=env.seed, what=what)
    if kind == "maclist":
        if not isinstance(value, list):
            raise CheckError(f"{what}: expected a list of MAC addresses")
        return [mac_value(v, env.roles, env.variables, what) for v in value]
    if kind == "directives":
        if not isinstance(value, list):
            raise CheckError(f"{what}: expected a list of {{dcmd, mac}}")
        return [(integer(d.get("dcmd", 0), env.variables, what), mac_value(d["mac"], env.roles, env.variables, what)) for d in value]
    raise CheckError(f"{what}: unknown kind {kind}")


def check_field(path: str, kind: str, spec, actual, env: Env, request: Optional[Request]) -> FieldCheck:
    name = path.rsplit(".", 1)[-1]
    try:
        if name == "tag" and spec == "same":
            spec = request.tag if request else spec
        if not _is_predicate(spec):
            expected = _convert(kind, spec, env, path)
            if kind == "maclist":
                ok = sorted(expected) == sorted(actual)
            else:
                ok = expected == actual
            return FieldCheck(path, show(expected, name), show(actual, name), ok)
        parts, ok = [], True
        for key, value in spec.items():
            if key in ("eq", "ne"):
                expected = _convert(kind, value, env, path)
                same = (sorted(expected) == sorted(actual)) if kind == "maclist" else expected == actual
                ok &= same if key == "eq" else not same
                parts.append(("" if key == "eq" else "≠ ") + show(expected, name))
            elif key in ("in", "not_in"):
                options = [_convert(kind, v, env, path) for v in value]
                inside = actual in options
                ok &= inside if key == "in" else not inside
                parts.append(("one of " if key == "in" else "none of ") + ", ".join(show(o, name) for o in options))
            elif key in ("min", "max"):
                bound = integer(value, env.variables, path)
                number = len(actual) if isinstance(actual, (bytes, list)) else actual
                ok &= number >= bound if key == "min" else number <= bound
                parts.append(f"{'≥' if key == 'min' else '≤'} {show(bound, name)}")
            elif key in ("bits_set", "bits_clear"):
                mask = integer(value, env.variables, path)
                ok &= (actual & mask) == mask if key == "bits_set" else (actual & mask) == 0
                parts.append(f"bits 0x{mask:02x} {'set' if key == 'bits_set' else 'clear'}")
            elif key in ("contains", "not_contains"):
                macs = _convert("maclist", value, env, path)
                has = [m in actual for m in macs]
                ok &= all(has) if key == "contains" else not any(has)
                parts.append(("contains " if key == "contains" else "excludes ") + show(macs))
            elif key == "length":
                inner = check_field(path + ".length", "int", value, len(actual), env, request)
                ok &= inner.ok
                parts.append(f"length {inner.expected}")
        return FieldCheck(path, " and ".join(parts), show(actual, name), ok)
    except (ValueError_, KeyError, TypeError) as exc:
        raise CheckError(f"{path}: {exc}") from None


# -- whole expectations ----------------------------------------------------------------


def waits_for_all(spec: Optional[Mapping]) -> bool:
    """Whether the engine must wait out the whole window (silence, counting)
    instead of stopping at the first reply."""
    if not spec:
        return False
    if "count" in spec:
        return True
    if "any_of" in spec:
        return all(waits_for_all(a) for a in spec["any_of"]) if spec["any_of"] else False
    return "silence" in spec and "reply" not in spec


def accepts_silence(spec: Optional[Mapping]) -> bool:
    """Whether no reply at all can satisfy ``spec`` (then the engine waits the
    silence window rather than the reply timeout, and checks afterwards for a
    reply that came late)."""
    if not spec or "count" in spec:
        return False
    if "any_of" in spec:
        if "reply" in spec or "silence" in spec:
            return "silence" in spec and "reply" not in spec and any(accepts_silence(a) for a in spec["any_of"])
        return any(accepts_silence(a) for a in spec["any_of"])
    return "silence" in spec and "reply" not in spec


def silence_seconds(spec: Optional[Mapping]) -> float:
    if not spec:
        return 0.0
    own = spec.get("silence")
    value = 0.0 if own in (None, True) else float(own)
    for alt in spec.get("any_of") or ():
        value = max(value, silence_seconds(alt))
    return value


def check_reply(spec: Mapping, reply: ReplyView, request: Optional[Request], env: Env) -> list[FieldCheck]:
    checks: list[FieldCheck] = []
    for section, fields in spec.items():
        if section == "frame":
            for name, pred in fields.items():
                checks.append(check_field(f"frame.{name}", "int", pred, len(reply.raw), env, request))
            continue
        if section == "data":
            checks += _check_data(fields, reply, request, env)
            continue
        kinds = FIELD_KINDS.get(section)
        if kinds is None:
            raise CheckError(f"reply has no section {section!r}")
        for name, pred in fields.items():
            if name not in kinds:
                raise CheckError(f"reply {section} has no field {name!r}")
            try:
                actual = reply.field(section, name)
            except CheckError as exc:
                checks.append(FieldCheck(f"{section}.{name}", show(pred), str(exc), False))
                continue
            checks.append(check_field(f"{section}.{name}", kinds[name], pred, actual, env, request))
    return checks


def _check_data(spec: Mapping, reply: ReplyView, request: Optional[Request], env: Env) -> list[FieldCheck]:
    data = reply.data
    checks = []
    if "length" in spec:
        checks.append(check_field("data.length", "int", spec["length"], len(data), env, request))
    if "equals" in spec:
        want = byte_value(spec["equals"], env.variables, seed=env.seed, lba=request.lba if request else 0, what="data.equals")
        checks.append(FieldCheck("data", describe_bytes(want), describe_bytes(data), data == want))
    if "prefix" in spec:
        want = byte_value(spec["prefix"], env.variables, seed=env.seed, what="data.prefix")
        checks.append(FieldCheck("data[:%d]" % len(want), describe_bytes(want), describe_bytes(data[: len(want)]), data.startswith(want)))
    if spec.get("zero"):
        checks.append(FieldCheck("data", "all zero", describe_bytes(data), not any(data)))
    shadow = spec.get("shadow")
    if shadow:
        if env.shadow is None:
            raise CheckError("data.shadow: no shadow disk in this run")
        if isinstance(shadow, Mapping):
            lba = integer(shadow.get("lba", request.lba if request else 0), env.variables, "data.shadow.lba")
            sectors = integer(shadow.get("sectors", request.sectors if request else 0), env.variables, "data.shadow.sectors")
        else:
            lba, sectors = (request.lba, request.sectors) if request else (0, 0)
        need = sectors * SECTOR
        if len(data) < need:
            checks.append(FieldCheck("data.length", str(need), str(len(data)), False))
        else:
            mismatches = env.shadow.compare(lba, data[:need])
            if mismatches:
                for m in mismatches[:4]:
                    first = next((i for i, (x, y) in enumerate(zip(m.expected, m.actual)) if x != y), 0)
                    checks.append(FieldCheck(f"data.sector[{m.lba}]", f"as written: {m.expected[first:first + 8].hex()}…",
                                             f"{m.actual[first:first + 8].hex()}… (differs from byte {first})", False))
                if len(mismatches) > 4:
                    checks.append(FieldCheck("data.sectors", "as written", f"{len(mismatches)} sectors differ", False))
            else:
                checks.append(FieldCheck("data", f"{sectors} sector(s) as the shadow disk holds from LBA {lba}", "equal", True))
    return checks


def evaluate(spec: Optional[Mapping], replies: list[ReplyView], request: Optional[Request], env: Env, waited: float = 0.0) -> Verdict:
    if not spec:
        return Verdict(True, "not checked")
    if "any_of" in spec and len(spec) == 1 + sum(1 for k in ("capture", "timeout", "match") if k in spec):
        alternatives = [evaluate(alt, replies, request, env, waited) for alt in spec["any_of"]]
        chosen = next((a for a in alternatives if a.ok), None)
        if chosen is not None:
            verdict = Verdict(True, f"alternative {alternatives.index(chosen) + 1} of {len(alternatives)} holds", chosen.checks, alternatives=alternatives)
        else:
            no_reply = all(a.no_reply for a in alternatives)
            reasons = "; ".join(f"({i + 1}) {a.message}" for i, a in enumerate(alternatives))
            verdict = Verdict(False, f"no alternative holds: {reasons}", [c for a in alternatives for c in a.checks], no_reply, alternatives)
        return _capture(spec, verdict, replies, env)
    checks: list[FieldCheck] = []
    messages = []
    no_reply = False
    if "silence" in spec:
        if replies:
            checks.append(FieldCheck("reply", f"none within {waited:.3g} s", _one_line(replies[0]), False))
            messages.append(f"expected silence, got {len(replies)} reply(ies)")
        else:
            checks.append(FieldCheck("reply", "none", "none", True))
    if "count" in spec:
        want = spec["count"]
        checks.append(FieldCheck("replies", str(want), str(len(replies)), len(replies) == want))
        if len(replies) != want:
            messages.append(f"expected {want} reply(ies), got {len(replies)}")
    if "reply" in spec:
        if not replies:
            checks.append(FieldCheck("reply", "a reply", f"none within {waited:.3g} s", False))
            messages.append(f"no reply within {waited:.3g} s")
            no_reply = True
        else:
            for extra_index, reply in enumerate(replies if "count" in spec else replies[:1]):
                got = check_reply(spec["reply"] or {}, reply, request, env)
                if extra_index:
                    for c in got:
                        c.path = f"reply[{extra_index}].{c.path}"
                checks += got
            bad = [c for c in checks if not c.ok and c.path != "replies"]
            if bad:
                messages.append("; ".join(f"{c.path}: expected {c.expected}, got {c.actual}" for c in bad[:3]))
    for name in ("any_of",):
        if name in spec:  # mixed with other keys: all must hold
            sub = evaluate({"any_of": spec["any_of"]}, replies, request, env, waited)
            checks += sub.checks
            if not sub.ok:
                messages.append(sub.message)
    ok = all(c.ok for c in checks)
    verdict = Verdict(ok, "ok" if ok else "; ".join(messages) or "mismatch", checks, no_reply and not ok)
    return _capture(spec, verdict, replies, env)


def _capture(spec: Mapping, verdict: Verdict, replies: list[ReplyView], env: Env) -> Verdict:
    wanted = spec.get("capture")
    if not wanted or not verdict.ok or not replies:
        return verdict
    for name, path in wanted.items():
        value = replies[0].path(path)
        verdict.captured[name] = value
        env.variables[name] = value
    return verdict


def _one_line(reply: ReplyView) -> str:
    if reply.frame is not None:
        return reply.frame.describe()
    return f"{len(reply.raw)}-byte frame, command {reply.header.command}, undecodable: {reply.decode_error}"


def describe(reply: ReplyView) -> str:
    return _one_line(reply)
