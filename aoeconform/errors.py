"""Errors the command line turns into one line and a distinct exit status.

Exit statuses (shared by every subcommand):
  0  success (for `run`: no MUST case failed)
  1  conformance failures
  2  usage or input error (bad flags, malformed suite file, missing interface)
  3  target unreachable (never answered)
  4  internal error (a bug in aoeconform)
  130  interrupted (Ctrl-C); `run` still writes its reports
  143  terminated (SIGTERM); `run` still writes its reports
"""

#: the exit statuses as `--help` lists them (the top-level help and `run --help`)
EXIT_STATUS_HELP = """\
exit status:
  0    success (run: no MUST case failed; with --strict, no case failed and none passed unexpectedly)
  1    conformance failures (run: also when --maxfail cut the run short)
  2    usage or input error: bad flags, a malformed suite or expectations file,
       a missing interface, an unwritable --report-dir (found before anything is sent)
  3    target unreachable: it never answered (run still writes report.json and junit.xml)
  4    internal error, a bug in aoeconform (--debug shows the traceback)
  130  interrupted by Ctrl-C (run still writes its reports)
  143  terminated by SIGTERM (run still writes its reports)"""

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class HarnessError(Exception):
    """An error with a one-line message meant for the user and an exit status."""

    exit_status = EXIT_INTERNAL


class UsageError(HarnessError):
    """Bad arguments or input files; the message says what to fix."""

    exit_status = EXIT_USAGE


class PermissionDenied(UsageError):
    """No permission for raw sockets or namespaces (needs root or CAP_NET_RAW)."""


class NoSuchInterface(UsageError):
    """The named network interface does not exist."""


class TargetUnreachable(HarnessError):
    """The target never answered within the time allowed."""

    exit_status = EXIT_UNREACHABLE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so the same clean-up runs (reports
    written, target released); the exit status is 143 instead of 130."""
