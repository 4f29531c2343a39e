"""Named numbers of the AoE protocol (AoEr11) and the ATA subset it carries.

Section numbers refer to the AoE specification; see the project's
protocol notes for the evidence behind each value.
"""

# Ethernet (§1, §2.1)
ETH_P_AOE = 0x88A2
ETH_HEADER_LEN = 14
ETH_MIN_FRAME = 60  # minimum Ethernet frame without FCS
BROADCAST_MAC = b"\xff" * 6

# Common AoE header (§2)
AOE_HEADER_LEN = 24  # frame offset where the command argument starts
AOE_VERSION = 1
FLAG_RESPONSE = 0x8  # R, bit 3 of the Ver/Flags byte
FLAG_ERROR = 0x4  # E, bit 2
FLAGS_MBZ = 0x3  # bits 1-0 must be zero

SHELF_BROADCAST = 0xFFFF  # Major wildcard (§2.5)
SLOT_BROADCAST = 0xFF  # Minor wildcard

TAG_TOOL_BIT = 1 << 31  # left to user tools; the Linux driver never sets it

# Where each header field sits in a whole frame (Ethernet header first), for
# code that reads one field without decoding the frame. Byte fields are
# indexes, multi-byte fields slices; shelf and tag are big-endian.
DST_BYTES = slice(0, 6)
SRC_BYTES = slice(6, 12)
ETHERTYPE_BYTES = slice(12, 14)
VER_FLAGS_BYTE = 14  # Ver in the high nibble, flags in the low one
ERROR_BYTE = 15
SHELF_BYTES = slice(16, 18)
SLOT_BYTE = 18
COMMAND_BYTE = 19
TAG_BYTES = slice(20, 24)


def frame_tag(frame: bytes) -> int:
    """The tag of a frame long enough to hold one; 0 for a shorter one."""
    return int.from_bytes(frame[TAG_BYTES], "big") if len(frame) >= AOE_HEADER_LEN else 0

# Error codes (§2.4)
ERR_UNRECOGNIZED_COMMAND = 1
ERR_BAD_ARGUMENT = 2
ERR_DEVICE_UNAVAILABLE = 3
ERR_CONFIG_STRING_PRESENT = 4
ERR_UNSUPPORTED_VERSION = 5
ERR_TARGET_RESERVED = 6
ERROR_NAMES = {
    ERR_UNRECOGNIZED_COMMAND: "unrecognized command code",
    ERR_BAD_ARGUMENT: "bad argument parameter",
    ERR_DEVICE_UNAVAILABLE: "device unavailable",
    ERR_CONFIG_STRING_PRESENT: "config string present",
    ERR_UNSUPPORTED_VERSION: "unsupported version",
    ERR_TARGET_RESERVED: "target is reserved",
}

# Commands (§2.6)
CMD_ATA = 0
CMD_QUERY_CONFIG = 1
CMD_MAC_MASK = 2
CMD_RESERVE_RELEASE = 3
CMD_VENDOR_MIN = 0xF0
CMD_VENDOR_MAX = 0xFF
COMMAND_NAMES = {
    CMD_ATA: "ATA",
    CMD_QUERY_CONFIG: "Query Config",
    CMD_MAC_MASK: "Mac Mask List",
    CMD_RESERVE_RELEASE: "Reserve/Release",
}

# ATA argument (§3.1)
ATA_ARG_LEN = 12
ATA_HEADER_END = AOE_HEADER_LEN + ATA_ARG_LEN  # 36: data starts here
AFLAG_E = 0x40  # extended (LBA48) command
AFLAG_D = 0x10  # device/head register bit
AFLAG_A = 0x02  # asynchronous write
AFLAG_W = 0x01  # data flows to the device
AFLAGS_MBZ = 0xAC
SECTOR_SIZE = 512

# ATA opcodes used by AoE targets and initiators
ATA_READ_SECTORS = 0x20
ATA_READ_SECTORS_EXT = 0x24
ATA_WRITE_SECTORS = 0x30
ATA_WRITE_SECTORS_EXT = 0x34
ATA_CHECK_POWER_MODE = 0xE5
ATA_FLUSH_CACHE = 0xE7
ATA_FLUSH_CACHE_EXT = 0xEA
ATA_IDENTIFY_DEVICE = 0xEC
ATA_SMART = 0xB0
ATA_SET_FEATURES = 0xEF
ATA_OPCODE_NAMES = {
    ATA_READ_SECTORS: "READ SECTORS",
    ATA_READ_SECTORS_EXT: "READ SECTORS EXT",
    ATA_WRITE_SECTORS: "WRITE SECTORS",
    ATA_WRITE_SECTORS_EXT: "WRITE SECTORS EXT",
    ATA_CHECK_POWER_MODE: "CHECK POWER MODE",
    ATA_FLUSH_CACHE: "FLUSH CACHE",
    ATA_FLUSH_CACHE_EXT: "FLUSH CACHE EXT",
    ATA_IDENTIFY_DEVICE: "IDENTIFY DEVICE",
}

# ATA status register bits
ATA_STATUS_BSY = 0x80
ATA_STATUS_DRDY = 0x40
ATA_STATUS_DF = 0x20
ATA_STATUS_DRQ = 0x08
ATA_STATUS_ERR = 0x01
ATA_STATUS_OK = ATA_STATUS_DRDY  # 0x40
ATA_STATUS_ERROR = ATA_STATUS_DRDY | ATA_STATUS_ERR  # 0x41
ATA_STATUS_FAILURE_MASK = ATA_STATUS_BSY | ATA_STATUS_DF | ATA_STATUS_DRQ | ATA_STATUS_ERR  # 0xA9

# ATA error register bits
ATA_ERROR_ABRT = 0x04
ATA_ERROR_IDNF = 0x10
ATA_ERROR_UNC = 0x40

LBA28_MAX_SECTORS = 0x0FFFFFFF
LBA48_LIMIT = 1 << 48
LBA28_DEVICE_BITS = 0xF0  # high nibble of lba3: device register, not address
LBA_MODE_BITS = 0xE0  # what the Linux driver puts in that nibble for reads/writes
IDENTIFY_DEVICE_BITS = 0xA0
CHECK_POWER_MODE_ACTIVE = 0xFF  # sector count in the reply: active or idle

# Query Config (§3.2)
CONFIG_ARG_LEN = 8
CONFIG_HEADER_END = AOE_HEADER_LEN + CONFIG_ARG_LEN  # 32
CONFIG_STRING_MAX = 1024
CCMD_READ = 0
CCMD_TEST = 1
CCMD_TEST_PREFIX = 2
CCMD_SET = 3
CCMD_FORCE_SET = 4
CCMD_NAMES = {
    CCMD_READ: "read",
    CCMD_TEST: "test",
    CCMD_TEST_PREFIX: "test prefix",
    CCMD_SET: "set",
    CCMD_FORCE_SET: "force set",
}
LEGACY_SECTOR_COUNT = 2  # a config Sector Count of 0 means 2 sectors

# Mac Mask List (§3.3)
MASK_ARG_LEN = 4
MASK_DIRECTIVE_LEN = 8
MCMD_READ = 0
MCMD_EDIT = 1
DCMD_NO_DIRECTIVE = 0
DCMD_ADD = 1
DCMD_DELETE = 2
MERROR_NONE = 0
MERROR_UNSPECIFIED = 1
MERROR_BAD_DCMD = 2
MERROR_LIST_FULL = 3

# Reserve/Release (§3.4)
RESERVE_ARG_LEN = 2
RCMD_READ = 0
RCMD_SET = 1
RCMD_FORCE_SET = 2

# Fixed argument length per command: shorter frames are truncated
FIXED_ARG_LEN = {
    CMD_ATA: ATA_ARG_LEN,
    CMD_QUERY_CONFIG: CONFIG_ARG_LEN,
    CMD_MAC_MASK: MASK_ARG_LEN,
    CMD_RESERVE_RELEASE: RESERVE_ARG_LEN,
}


def sectors_per_frame(mtu: int) -> int:
    """Sectors of data that fit one ATA frame on a link with this MTU.

    The MTU already excludes the 14-byte Ethernet header, so subtracting the
    whole 36-byte frame header is conservative; vblade and Linux do the same,
    which gives 2 sectors at MTU 1500 and 17 at MTU 9000."""
    return max(0, (mtu - ATA_HEADER_END) // SECTOR_SIZE)
