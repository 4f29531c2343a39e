"""The AoE wire format: one module per part of the protocol.

- ``header``: Ethernet and common AoE header (§2)
- ``ata``: Issue ATA Command argument (§3.1)
- ``config``: Query Config Information argument (§3.2)
- ``macmask``: Mac Mask List argument (§3.3)
- ``reserve``: Reserve/Release argument (§3.4)
- ``identify``: ATA IDENTIFY DEVICE data
- ``frame``: a whole frame and decode dispatch by command
- ``scapy_layer``: the same format as scapy layers, for pcaps and interactive use
"""

from . import constants
from .ata import AtaArg
from .config import ConfigArg
from .errors import DecodeError
from .frame import ARG_TYPES, Frame, RawArg
from .header import Header, mac_from_str, mac_to_str
from .identify import IdentifyData
from .macmask import Directive, MacMaskArg
from .reserve import ReserveArg

__all__ = [
    "constants",
    "AtaArg",
    "ConfigArg",
    "DecodeError",
    "ARG_TYPES",
    "Frame",
    "RawArg",
    "Header",
    "mac_from_str",
    "mac_to_str",
    "IdentifyData",
    "Directive",
    "MacMaskArg",
    "ReserveArg",
]
