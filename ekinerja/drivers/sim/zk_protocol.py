"""Wire-level pieces of the ZKTeco "standalone SDK" protocol, as a terminal speaks it.

Packets are an 8-byte little-endian header (command, checksum, session id, reply id) followed by a
payload. Over UDP one packet is one datagram; over TCP every packet is prefixed with the magic
``50 50 82 7d`` and a u32 length. Times are packed into a u32 with a calendar of 31-day months, so
an impossible date such as 31 February has a valid encoding: decoding must refuse it.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from datetime import datetime

# Commands (client to terminal).
CMD_USERTEMP_RRQ = 9
CMD_OPTIONS_RRQ = 11
CMD_OPTIONS_WRQ = 12
CMD_ATTLOG_RRQ = 13
CMD_CLEAR_DATA = 14
CMD_CLEAR_ATTLOG = 15
CMD_UNLOCK = 31
CMD_GET_FREE_SIZES = 50
CMD_ENABLE_CLOCK = 57
CMD_STARTVERIFY = 60
CMD_CANCELCAPTURE = 62
CMD_WRITE_LCD = 66
CMD_CLEAR_LCD = 67
CMD_GET_PINWIDTH = 69
CMD_DB_RRQ = 7
CMD_GET_TIME = 201
CMD_SET_TIME = 202
CMD_REG_EVENT = 500
CMD_CONNECT = 1000
CMD_EXIT = 1001
CMD_ENABLEDEVICE = 1002
CMD_DISABLEDEVICE = 1003
CMD_RESTART = 1004
CMD_POWEROFF = 1005
CMD_REFRESHDATA = 1013
CMD_REFRESHOPTION = 1014
CMD_TESTVOICE = 1017
CMD_GET_VERSION = 1100
CMD_AUTH = 1102
CMD_PREPARE_DATA = 1500
CMD_DATA = 1501
CMD_FREE_DATA = 1502
CMD_PREPARE_BUFFER = 1503
CMD_READ_BUFFER = 1504

# Replies (terminal to client). A client sends CMD_ACK_OK to acknowledge a pushed event.
CMD_ACK_OK = 2000
CMD_ACK_ERROR = 2001
CMD_ACK_DATA = 2002
CMD_ACK_UNAUTH = 2005
CMD_ACK_UNKNOWN = 0xFFFF
CMD_ACK_ERROR_CMD = 0xFFFD
CMD_ACK_ERROR_INIT = 0xFFFC
CMD_ACK_ERROR_DATA = 0xFFFB

# Event flags for CMD_REG_EVENT and the session field of pushed events.
EF_ATTLOG = 1

# Dataset selectors (the "fct" of a buffered read).
FCT_ATTLOG = 1
FCT_FINGERTMP = 2
FCT_USER = 5

USHRT_MAX = 0xFFFF
TCP_MAGIC = b"\x50\x50\x82\x7d"
HEADER = struct.Struct("<4H")
TCP_TOP = struct.Struct("<4sI")
U32 = struct.Struct("<I")
# Largest packet a client may legitimately send: a 64 KiB chunk plus headers. Anything larger is
# a corrupt stream, not a request.
MAX_TCP_PACKET = 1 << 20

_SECONDS_PER_DAY = 86400


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded ZK packet (header fields and payload)."""

    command: int
    checksum: int
    session_id: int
    reply_id: int
    payload: bytes


def _fold(total: int) -> int:
    """Reduce a sum to 16 bits with end-around carry, keeping any non-zero sum non-zero."""
    while total > USHRT_MAX:
        total = (total & USHRT_MAX) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    """ZK checksum of ``data`` (a header with its checksum field zeroed, plus the payload).

    The 16-bit ones'-complement sum of little-endian words, an odd last byte added as is. The
    complement is taken the way zkemsdk.c does it (``~sum`` then "add 65535 while negative"),
    which lands one below the textbook value; clients built from that code expect exactly this.
    """
    even = len(data) & ~1
    words = array("H", data[:even])
    if sys.byteorder == "big":
        words.byteswap()
    total = _fold(sum(words) + (data[-1] if len(data) & 1 else 0))
    result = ~total
    while result < 0:
        result += USHRT_MAX
    return result


def pack_packet(command: int, session_id: int, reply_id: int, payload: bytes = b"") -> bytes:
    """Header plus payload, with the checksum computed over both."""
    unsummed = HEADER.pack(command, 0, session_id, reply_id) + payload
    return HEADER.pack(command, checksum(unsummed), session_id, reply_id) + payload


def unpack_packet(data: bytes) -> Packet:
    """Split a raw packet (no TCP prefix) into header fields and payload."""
    if len(data) < HEADER.size:
        raise ValueError(f"ZK packet too short: {len(data)} bytes")
    command, chk, session_id, reply_id = HEADER.unpack_from(data)
    return Packet(command, chk, session_id, reply_id, bytes(data[HEADER.size :]))


def checksum_matches(packet: Packet) -> bool:
    """Whether the packet's checksum is right for the packet as sent or as pyzk computes it.

    pyzk sums the header with the previous reply id and then sends the incremented one, so its
    checksums only match when the reply id is taken back by one (wrapping at 65535).
    """
    for reply_id in (packet.reply_id, (packet.reply_id - 1) % USHRT_MAX):
        body = HEADER.pack(packet.command, 0, packet.session_id, reply_id) + packet.payload
        if checksum(body) == packet.checksum:
            return True
    return False


def tcp_frame(packet: bytes) -> bytes:
    """Prefix a packet with the TCP magic and its length."""
    return TCP_TOP.pack(TCP_MAGIC, len(packet)) + packet


class TcpDeframer:
    """Reassembles ZK packets from a TCP byte stream (which may split or join them)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete packets (without TCP prefix) now available.

        Raises ValueError when the stream does not start with the magic (the peer is not a ZK
        client, or the stream is out of step), or announces an absurd length.
        """
        self._buffer += data
        packets: list[bytes] = []
        while len(self._buffer) >= TCP_TOP.size:
            magic, length = TCP_TOP.unpack_from(self._buffer)
            if magic != TCP_MAGIC:
                raise ValueError(f"bad ZK TCP magic {magic.hex()}")
            if length < HEADER.size or length > MAX_TCP_PACKET:
                raise ValueError(f"bad ZK TCP length {length}")
            end = TCP_TOP.size + length
            if len(self._buffer) < end:
                break
            packets.append(bytes(self._buffer[TCP_TOP.size : end]))
            del self._buffer[:end]
        return packets


def encode_time_parts(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """ZK u32 time from calendar fields, without checking that the date exists.

    The terminal's calendar has twelve 31-day months per year, so 31 February has an encoding;
    that is how a terminal's log can come to hold an impossible date.
    """
    days = ((year % 100) * 12 + (month - 1)) * 31 + (day - 1)
    return days * _SECONDS_PER_DAY + (hour * 60 + minute) * 60 + second


def encode_time(moment: datetime) -> int:
    """ZK u32 time of a (naive, wall-clock) datetime; years 2000 to 2099."""
    return encode_time_parts(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def time_hex(moment: datetime) -> bytes:
    """The 6-byte time of live events: year-2000, month, day, hour, minute, second."""
    return bytes((moment.year - 2000, moment.month, moment.day, moment.hour, moment.minute, moment.second))


def decode_time_hex(data: bytes) -> datetime:
    """Datetime of a 6-byte live-event time; raises ValueError for an impossible date."""
    if len(data) != 6:
        raise ValueError(f"time hex must be 6 bytes, got {len(data)}")
    year, month, day, hour, minute, second = data
    return datetime(2000 + year, month, day, hour, minute, second)


def make_comm_key(password: int, session_id: int, ticks: int = 50) -> bytes:
    """The 4-byte key a client sends with CMD_AUTH for ``password`` on session ``session_id``.

    The password's 32 bits are mirrored, the session id added, the little-endian bytes XORed with
    "ZKSO", the two 16-bit halves swapped, and then bytes 0, 1 and 3 XORed with the low byte of
    ``ticks`` while byte 2 becomes that byte itself.
    """
    mirrored = int(f"{password & 0xFFFFFFFF:032b}"[::-1], 2)
    summed = ((mirrored + session_id) & 0xFFFFFFFF).to_bytes(4, "little")
    salted = bytes(a ^ b for a, b in zip(summed, b"ZKSO", strict=True))
    swapped = salted[2:4] + salted[0:2]
    tick = ticks & 0xFF
    return bytes((swapped[0] ^ tick, swapped[1] ^ tick, tick, swapped[3] ^ tick))
