"""aoeconform: conformance and fuzzing harness for ATA over Ethernet."""

__version__ = "0.1.0"
