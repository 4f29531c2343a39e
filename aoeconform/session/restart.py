"""``--restart-cmd``: one meaning for ``run``, ``fuzz`` and ``replay``.

The command is a shell command line (``sh -c``), run to completion (at most
``RESTART_COMMAND_SECONDS``) with no input; it may return before the target
is up, because the session then probes until the target answers (at most
``RESTART_READY_SECONDS``, see ``Session.restart``). A command that cannot
be run, exits non-zero or runs too long is a failed restart, reported with
the last line it printed.
"""

from __future__ import annotations

import subprocess
from typing import Callable

from aoeconform.errors import UsageError

#: how long the restart command itself may run
RESTART_COMMAND_SECONDS = 120.0
#: after the command, how long the target may take to answer again
RESTART_READY_SECONDS = 15.0


class RestartFailed(Exception):
    """The restart hook could not restart the target."""


def restart_command(command: str) -> Callable[[], None]:
    """A restart hook that runs ``command``; raises ``RestartFailed`` when it fails."""
    if not command or not command.strip():
        raise UsageError("--restart-cmd is empty")

    def restart() -> None:
        try:
            done = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=RESTART_COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            raise RestartFailed(f"--restart-cmd did not finish within {RESTART_COMMAND_SECONDS:g} s: {command}") from None
        except OSError as exc:
            raise RestartFailed(f"--restart-cmd could not be run: {exc}") from None
        if done.returncode != 0:
            tail = ((done.stderr or "").strip() or (done.stdout or "").strip()).splitlines()[-1:] or [""]
            raise RestartFailed(f"--restart-cmd exited with status {done.returncode}: {tail[0][-200:]}")

    return restart
