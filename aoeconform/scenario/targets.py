"""Targets named on a command line, for one run over several of them.

``--target`` (``aoeconform run``) and ``--aoe-target`` (the pytest plugin)
take ``IF[:S.N]`` for a target on an interface, or ``bundled`` /
``bundled:QUIRK[,QUIRK...]`` for a fresh reference target (in its own lab
namespace when root). The same text given twice names two targets (two
bundled targets are two instances); their labels get ``#2``, ``#3``.

``--restart-cmd`` is given once (it serves every target on an interface) or
once per such target, in the order of the ``--target`` options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from aoeconform.errors import UsageError

BUNDLED = "bundled"


@dataclass(frozen=True)
class FleetTarget:
    #: as given on the command line
    text: str
    #: unique within the run: ``text``, or ``text#2`` for a repeat
    label: str
    bundled: bool
    quirks: frozenset = frozenset()
    restart_cmd: Optional[str] = None
    #: ``TARGET@HOST``: the xdist gateway (``--tx ...//id=HOST``) whose worker drives it
    host: Optional[str] = None

    @property
    def address(self) -> str:
        """The target without its ``@HOST``."""
        return self.text.rpartition("@")[0] if self.host else self.text

    def open(self, *, mode: str = "auto", mtu: int = 1500, readonly: bool = False, second_iface: Optional[str] = None):
        """A ``TargetEndpoint`` to this target (the caller closes it)."""
        from . import endpoint as ep

        if self.bundled:
            return ep.bundled(self.quirks, readonly=readonly, mtu=mtu, mode=mode)
        return ep.external(self.address, second_iface, self.restart_cmd, readonly=readonly)


def parse_targets(texts: Sequence[str], restart_cmds: Sequence[str] = (), quirks: Sequence[str] = (),
                  option: str = "--target", hosts: bool = False) -> list[FleetTarget]:
    """FleetTargets for ``texts``; ``quirks`` go to every bundled target. With ``hosts``,
    ``TARGET@HOST`` pins a target to the worker of one xdist gateway."""
    from aoeconform.initiator.addressing import parse_target
    from aoeconform.target.quirks import check_quirks

    common = check_quirks(quirks)
    external = [t for t in texts if not _is_bundled(t)]
    restart_cmds = list(restart_cmds)
    if restart_cmds and not external:
        raise UsageError("--restart-cmd needs a target on an interface (the bundled target restarts itself)")
    if len(restart_cmds) not in (0, 1, len(external)):
        raise UsageError(f"--restart-cmd is given {len(restart_cmds)} times for {len(external)} targets on interfaces: "
                         f"give it once for all of them, or once per target in the order of {option}")
    out: list = []
    seen: dict[str, int] = {}
    for text in texts:
        seen[text] = seen.get(text, 0) + 1
        label = text if seen[text] == 1 else f"{text}#{seen[text]}"
        address, at, host = text.rpartition("@") if "@" in text else (text, "", "")
        if at and (not hosts or not host):
            raise UsageError(f"{option} {text!r}: TARGET@HOST names the xdist gateway (--tx ...//id=HOST) that drives it; "
                             "it needs the pytest plugin" if not hosts else f"{option} {text!r}: no host after @")
        if _is_bundled(address):
            names = [q for q in address.partition(":")[2].split(",") if q]
            out.append(FleetTarget(text, label, True, common | check_quirks(names), host=host or None))
            continue
        try:
            parse_target(address)  # the syntax, before anything is opened
        except UsageError as exc:
            raise UsageError(str(exc).replace("--target", option, 1)) from None
        if quirks:
            raise UsageError("--quirk applies to the bundled target only; name `bundled` as a target")
        index = 0
        if len(restart_cmds) > 1:
            # the n-th text among the external ones, counting repeats
            index = [i for i, t in enumerate(external) if t == text][seen[text] - 1]
        out.append(FleetTarget(text, label, False, restart_cmd=restart_cmds[index] if restart_cmds else None, host=host or None))
    return out


def _is_bundled(text: str) -> bool:
    text = text.rpartition("@")[0] if "@" in text else text
    return text == BUNDLED or text.startswith(BUNDLED + ":")
