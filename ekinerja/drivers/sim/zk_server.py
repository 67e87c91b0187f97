"""A simulated ZKTeco terminal on real sockets, good enough for unmodified pyzk 0.9.

TCP and UDP are served on one port, as terminals do. Each TCP client gets a thread; all UDP
clients share one. Commands are answered by :class:`_Protocol`, a dispatch table that knows
nothing about sockets: it returns the packets to send and the transport frames them. Over TCP a
reply is always one ZK packet in one ``sendall`` because pyzk reads each reply with one ``recv``.

Live events follow the terminal's pace: one event is in flight per client, and the next is sent
only once the client has acknowledged the previous one, since pyzk cannot parse two events that
arrive in one TCP segment.

Tests make the terminal misbehave through :class:`~ekinerja.drivers.sim.zk_faults.Faults`: cut
transfers, a hung terminal, slow replies, odd live event layouts and reboots (see ZkSimulator).
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import DeviceDisabled, ZkDevice, ZkRecord, terminal_options
from ekinerja.drivers.sim.zk_faults import Faults
from ekinerja.drivers.zk_records import decode_time

log = logging.getLogger("ekinerja.sim.zk")

PROTOCOLS = ("tcp", "udp", "both")
# Datasets up to this size are answered to the prepare command at once (a UDP reply must fit
# pyzk's 1024-byte receive); larger ones are read in chunks.
_DIRECT_DATA_MAX = 1024 - zp.HEADER.size
_UDP_DATA_MAX = 1024
_EVENT_ACK_TIMEOUT_S = 5.0
_MAX_UDP_SESSIONS = 64
# SO_LINGER on with a zero timeout: close() resets the connection instead of closing it.
_RESET = struct.pack("ii", 1, 0)

Reply = tuple[int, bytes]


@dataclass(eq=False)
class _Session:
    """One client's state: its session id, authentication, read buffer and live events."""

    transport: str
    wake: Callable[[], None]
    faults: Faults
    generation: int = 0  # the reboot it was opened after; an older one is gone
    address: tuple[str, int] | None = None
    session_id: int = 0
    connected: bool = False
    authenticated: bool = False
    closed: bool = False
    buffer: bytes | None = None
    cut_off: bool = False  # the reply being sent is a dropped transfer: send part, then hang up
    unsubscribe: Callable[[], None] | None = None
    pending: deque[ZkRecord] = field(default_factory=deque)
    in_flight_since: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue_event(self, record: ZkRecord) -> None:
        """Device listener: queue a punch for this client and wake its transport thread."""
        if self.faults.silent:
            return  # a hung terminal's event stream is dead: the punch is only in the log
        with self.lock:
            self.pending.append(record)
        self.wake()

    def event_acked(self) -> None:
        """The client acknowledged the event in flight."""
        with self.lock:
            self.in_flight_since = None

    def take_event(self) -> ZkRecord | None:
        """The next event to send now, if one is due and none is waiting for its ACK."""
        with self.lock:
            if self.faults.silent:
                self.pending.clear()
                self.in_flight_since = None
                return None
            if self.in_flight_since is not None:
                if time.monotonic() - self.in_flight_since < _EVENT_ACK_TIMEOUT_S:
                    return None
                log.warning("session %d: live event not acknowledged, sending the next", self.session_id)
            if not self.pending or self.unsubscribe is None:
                self.in_flight_since = None
                return None
            self.in_flight_since = time.monotonic()
            return self.pending.popleft()

    def waiting_for_ack(self) -> bool:
        """Whether an event is in flight (the transport then polls for the ACK timeout)."""
        with self.lock:
            return self.in_flight_since is not None

    def stop_events(self) -> None:
        """Unsubscribe from the device and drop queued events."""
        with self.lock:
            unsubscribe, self.unsubscribe = self.unsubscribe, None
            self.pending.clear()
            self.in_flight_since = None
        if unsubscribe is not None:
            unsubscribe()


class _Protocol:
    """Answers ZK commands for one device; shared by every session of a simulator."""

    def __init__(self, device: ZkDevice, password: int, faults: Faults) -> None:
        self.device = device
        self.password = password
        self.faults = faults
        # The session that disabled the device: a terminal re-enables itself when it ends.
        self._disabled_by: _Session | None = None
        self._enable_lock = threading.Lock()
        self._ids = random.Random()
        self._counts: Counter[int] = Counter()
        self._counts_lock = threading.Lock()
        self._handlers: dict[int, Callable[[_Session, zp.Packet], list[Reply]]] = {
            zp.CMD_CONNECT: self._connect,
            zp.CMD_AUTH: self._auth,
            zp.CMD_EXIT: self._exit,
            zp.CMD_RESTART: self._exit,
            zp.CMD_POWEROFF: self._exit,
            zp.CMD_ENABLEDEVICE: self._enable,
            zp.CMD_DISABLEDEVICE: self._disable,
            zp.CMD_GET_VERSION: lambda s, p: [(zp.CMD_ACK_OK, device.firmware.encode() + b"\x00")],
            zp.CMD_OPTIONS_RRQ: self._options,
            zp.CMD_GET_FREE_SIZES: lambda s, p: [(zp.CMD_ACK_OK, device.free_sizes())],
            zp.CMD_GET_TIME: lambda s, p: [(zp.CMD_ACK_OK, zp.U32.pack(zp.encode_time(device.now())))],
            zp.CMD_SET_TIME: self._set_time,
            zp.CMD_GET_PINWIDTH: lambda s, p: [(zp.CMD_ACK_OK, bytes((device.pin_width,)))],
            zp.CMD_CLEAR_ATTLOG: self._clear_attlog,
            zp.CMD_CLEAR_DATA: self._clear_data,
            zp.CMD_PREPARE_BUFFER: self._prepare_buffer,
            zp.CMD_READ_BUFFER: self._read_buffer,
            zp.CMD_FREE_DATA: self._free_data,
            zp.CMD_REG_EVENT: self._reg_event,
        }
        for command in (
            zp.CMD_REFRESHDATA, zp.CMD_REFRESHOPTION, zp.CMD_CANCELCAPTURE, zp.CMD_STARTVERIFY,
            zp.CMD_TESTVOICE, zp.CMD_UNLOCK, zp.CMD_WRITE_LCD, zp.CMD_CLEAR_LCD, zp.CMD_ENABLE_CLOCK,
            zp.CMD_OPTIONS_WRQ,
        ):  # fmt: skip
            self._handlers[command] = lambda s, p: [(zp.CMD_ACK_OK, b"")]

    def command_count(self, command: int) -> int:
        """How many packets with this command the simulator has received."""
        with self._counts_lock:
            return self._counts[command]

    def new_session(self, transport: str, wake: Callable[[], None], address: tuple[str, int] | None = None) -> _Session:
        """A session for a new client, of the current reboot generation."""
        return _Session(transport, wake, self.faults, self.faults.generation, address)

    def end_session(self, session: _Session) -> None:
        """A session is over: stop its live events, and enable the terminal if it disabled it.

        Real terminals re-enable themselves when the session that disabled them ends, whether
        it exits, its link drops, it is forgotten or the terminal reboots.
        """
        session.stop_events()
        with self._enable_lock:
            if self._disabled_by is session:
                self._disabled_by = None
                self.device.enabled = True

    def reboot(self) -> None:
        """The terminal restarted: it comes back enabled."""
        self._disabled_by_session(None)

    def _disabled_by_session(self, session: _Session | None) -> None:
        """Disable the terminal for ``session``, or enable it (None)."""
        with self._enable_lock:
            self._disabled_by = session
            self.device.enabled = session is None

    def handle(self, session: _Session, packet: zp.Packet, stopping: threading.Event) -> list[Reply]:
        """The replies to one packet: none to a client's ACK of a live event, none while hung.

        Replies are due after the fault delay, slept in the caller's thread; ``stopping`` cuts
        the wait short (and then there is no reply).
        """
        with self._counts_lock:
            self._counts[packet.command] += 1
        if not self._answers(session, packet, stopping):
            return []
        if not zp.checksum_matches(packet):
            log.warning("command %d with a wrong checksum %d (answered anyway)", packet.command, packet.checksum)
        if packet.command == zp.CMD_ACK_OK:
            session.event_acked()
            return []
        if packet.command not in (zp.CMD_CONNECT, zp.CMD_AUTH, zp.CMD_EXIT):
            if not session.connected:
                return [(zp.CMD_ACK_ERROR_INIT, b"")]
            if not session.authenticated:
                return [(zp.CMD_ACK_UNAUTH, b"")]
        if packet.command in self.faults.refused:
            return [(zp.CMD_ACK_ERROR, b"")]
        handler = self._handlers.get(packet.command)
        if handler is None:
            log.debug("unknown command %d", packet.command)
            return [(zp.CMD_ACK_UNKNOWN, b"")]
        try:
            return handler(session, packet)
        except Exception:
            # A malformed request must cost the client an error reply, not the server a thread.
            log.exception("command %d failed", packet.command)
            return [(zp.CMD_ACK_ERROR, b"")]

    def _answers(self, session: _Session, packet: zp.Packet, stopping: threading.Event) -> bool:
        """Whether to answer: not while hung, nor if stopped or rebooted during the delay."""
        if self.faults.silent:
            return False
        delay = self.faults.delay_s
        if delay > 0 and packet.command != zp.CMD_ACK_OK and stopping.wait(delay):
            return False
        return not self.faults.silent and session.generation == self.faults.generation

    def _connect(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        session.stop_events()
        session.session_id = self._ids.randrange(1, zp.USHRT_MAX)
        session.connected = True
        session.authenticated = self.password == 0
        log.debug("session %d connected over %s", session.session_id, session.transport)
        return [(zp.CMD_ACK_OK if session.authenticated else zp.CMD_ACK_UNAUTH, b"")]

    def _auth(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        if not session.connected:
            return [(zp.CMD_ACK_ERROR_INIT, b"")]
        expected = zp.make_comm_key(self.password, session.session_id)
        session.authenticated = self.password == 0 or packet.payload[:4] == expected
        if not session.authenticated:
            log.info("session %d: wrong comm key", session.session_id)
        return [(zp.CMD_ACK_OK if session.authenticated else zp.CMD_ACK_UNAUTH, b"")]

    def _exit(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self.end_session(session)
        session.closed = True
        session.connected = False
        return [(zp.CMD_ACK_OK, b"")]

    def _enable(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self._disabled_by_session(None)
        return [(zp.CMD_ACK_OK, b"")]

    def _disable(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self._disabled_by_session(session)
        return [(zp.CMD_ACK_OK, b"")]

    def _options(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        # Unknown options answer an empty value, which pyzk reads as 0 / "".
        name = packet.payload.split(b"\x00", 1)[0].decode(errors="replace")
        value = terminal_options(self.device).get(name, "")
        return [(zp.CMD_ACK_OK, f"{name}={value}".encode() + b"\x00")]

    def _set_time(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        try:
            (value,) = zp.U32.unpack(packet.payload[:4])
            self.device.set_time(decode_time(value))
        except (ValueError, TypeError, struct.error):
            return [(zp.CMD_ACK_ERROR, b"")]
        return [(zp.CMD_ACK_OK, b"")]

    def _clear_attlog(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self.device.clear_attendance()
        return [(zp.CMD_ACK_OK, b"")]

    def _clear_data(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self.device.clear_data()
        return [(zp.CMD_ACK_OK, b"")]

    def _dataset(self, payload: bytes) -> bytes | None:
        """The dataset a prepare (1503) asks for: ``<bhii`` flag, command, fct, ext."""
        if len(payload) < 7:
            return None
        command, fct = struct.unpack_from("<hi", payload, 1)
        if command == zp.CMD_ATTLOG_RRQ:
            return self.device.attendance_dataset()
        if command == zp.CMD_USERTEMP_RRQ and fct == zp.FCT_USER:
            return self.device.users_dataset()
        if command in (zp.CMD_USERTEMP_RRQ, zp.CMD_DB_RRQ):
            return zp.U32.pack(0)  # no fingerprint templates, nor other tables
        return None

    def _prepare_buffer(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        data = self._dataset(packet.payload)
        if data is None:
            return [(zp.CMD_ACK_ERROR, b"")]
        if len(data) <= _DIRECT_DATA_MAX:
            return [(zp.CMD_DATA, data)]
        # A snapshot: punches added while the client reads chunks do not shift the chunks.
        session.buffer = data
        return [(zp.CMD_ACK_OK, b"\x00" + zp.U32.pack(len(data)))]

    def _read_buffer(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        if session.buffer is None or len(packet.payload) < 8:
            return [(zp.CMD_ACK_ERROR, b"")]
        start, size = struct.unpack_from("<ii", packet.payload)
        if start < 0 or size < 0:
            return [(zp.CMD_ACK_ERROR_DATA, b"")]
        chunk = session.buffer[start : start + size]
        cut_off = self.faults.take_drop()
        if session.transport == "tcp":
            session.cut_off = cut_off  # the transport sends half the frame and resets the link
            return [(zp.CMD_DATA, chunk)]
        replies: list[Reply] = [(zp.CMD_PREPARE_DATA, zp.U32.pack(len(chunk)))]
        replies += [(zp.CMD_DATA, chunk[at : at + _UDP_DATA_MAX]) for at in range(0, len(chunk), _UDP_DATA_MAX)]
        replies.append((zp.CMD_ACK_OK, b""))
        # Cut off: the prepare and the first datagram, then nothing; pyzk waits and times out.
        return replies[:2] if cut_off else replies

    def _free_data(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        session.buffer = None
        return [(zp.CMD_ACK_OK, b"")]

    def _reg_event(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        flags = zp.U32.unpack(packet.payload[:4].ljust(4, b"\x00"))[0]
        if flags & zp.EF_ATTLOG:
            if session.unsubscribe is None:
                session.unsubscribe = self.device.subscribe(session.queue_event)
        else:
            session.stop_events()
        return [(zp.CMD_ACK_OK, b"")]

    def event_packet(self, record: ZkRecord) -> bytes:
        """A pushed attendance event: command 500 with the event code in the session field.

        With a fault event size the payload is zero-padded or cut to it, as firmware with an
        event layout pyzk does not know would send.
        """
        payload = self.device.event_payload(record)
        size = self.faults.live_event_size
        if size is not None:
            payload = payload[:size].ljust(size, b"\x00")
        return zp.pack_packet(zp.CMD_REG_EVENT, zp.EF_ATTLOG, 0, payload)


class _Waker:
    """A socket pair that lets other threads interrupt a thread blocked in ``select``."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        """Make the reader readable (a full pipe is already readable, so errors are moot)."""
        with contextlib.suppress(OSError):
            self._writer.send(b"\x00")

    def drain(self) -> None:
        """Empty the reader so ``select`` blocks again."""
        try:
            while self.reader.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Close both ends."""
        self.reader.close()
        self._writer.close()


class _TcpConnection:
    """One TCP client, served by its own thread until it exits, disconnects or the server stops."""

    def __init__(self, sock: socket.socket, peer: str, protocol: _Protocol) -> None:
        self._sock = sock
        self._peer = peer
        self._protocol = protocol
        self._waker = _Waker()
        self._stopping = threading.Event()
        self.session = protocol.new_session("tcp", self._waker.wake)
        self.thread = threading.Thread(target=self._run, name=f"zk-sim-tcp-{peer}", daemon=True)

    def stop(self) -> None:
        """Ask the thread to finish (it closes the socket itself)."""
        self._stopping.set()
        self._waker.wake()

    def drop(self) -> None:
        """Hang up at once (a reboot): no further reply, events end, the link is reset."""
        self._stopping.set()
        self._protocol.end_session(self.session)
        # shutdown, not close: the thread may be in select or send on the socket; it closes it
        # itself, then with a reset, so a pyzk waiting for the rest of a chunk gets an error.
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            self._sock.shutdown(socket.SHUT_RDWR)
        self._waker.wake()

    def _run(self) -> None:
        try:
            self._serve()
        except (OSError, ValueError) as exc:
            log.info("TCP client %s dropped: %s", self._peer, exc)
        finally:
            self._protocol.end_session(self.session)
            self._sock.close()
            self._waker.close()
            log.debug("TCP client %s closed", self._peer)

    def _serve(self) -> None:
        deframer = zp.TcpDeframer()
        while not self._stopping.is_set():
            timeout = 0.5 if self.session.waiting_for_ack() else None
            readable, _, _ = select.select([self._sock, self._waker.reader], [], [], timeout)
            if self._waker.reader in readable:
                self._waker.drain()
            if self._sock in readable:
                data = self._sock.recv(1 << 16)
                if not data:  # includes pyzk's probe, which connects and closes at once
                    return
                for raw in deframer.feed(data):
                    if not self._answer(zp.unpack_packet(raw)) or self.session.closed:
                        return
            self._send_event()

    def _answer(self, packet: zp.Packet) -> bool:
        """Send the replies to one packet; False when the connection is to be dropped."""
        for command, payload in self._protocol.handle(self.session, packet, self._stopping):
            frame = zp.tcp_frame(zp.pack_packet(command, self.session.session_id, packet.reply_id, payload))
            if self.session.cut_off:
                self._cut_off(frame)
                return False
            self._sock.sendall(frame)
        return True

    def _cut_off(self, frame: bytes) -> None:
        """Send the first half of a reply and set the socket to reset when closed, unless the
        test asked for an orderly close (``drop_transfers(reset=False)``).

        At an orderly end of stream unmodified pyzk's loop reading the rest of a chunk spins
        forever, whereas a reset makes its ``recv`` raise; real links can end either way.
        """
        self.session.cut_off = False
        self._sock.sendall(frame[: len(frame) // 2])
        if self._protocol.faults.drop_with_reset:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)

    def _send_event(self) -> None:
        record = self.session.take_event()
        if record is not None:
            self._sock.sendall(zp.tcp_frame(self._protocol.event_packet(record)))


class _UdpEndpoint:
    """Every UDP client, served by one thread; sessions are told apart by their session id."""

    def __init__(self, sock: socket.socket, protocol: _Protocol) -> None:
        self._sock = sock
        self._protocol = protocol
        self._waker = _Waker()
        self._stopping = threading.Event()
        self._sessions: dict[int, _Session] = {}
        self._sessions_lock = threading.Lock()  # the endpoint's thread and restart() change them
        self.thread = threading.Thread(target=self._run, name="zk-sim-udp", daemon=True)

    def stop(self) -> None:
        """Ask the thread to finish and drop the sessions."""
        self._stopping.set()
        self._waker.wake()

    def forget_sessions(self) -> None:
        """Forget every session and live subscription (a reboot)."""
        with self._sessions_lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            self._protocol.end_session(session)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                waiting = any(s.waiting_for_ack() for s in self._sessions.values())
                readable, _, _ = select.select([self._sock, self._waker.reader], [], [], 0.5 if waiting else None)
                if self._waker.reader in readable:
                    self._waker.drain()
                if self._sock in readable:
                    self._receive()
                self._send_events()
        finally:
            self.forget_sessions()
            self._waker.close()

    def _receive(self) -> None:
        try:
            data, address = self._sock.recvfrom(1 << 16)
            packet = zp.unpack_packet(data)
        except (OSError, ValueError) as exc:
            log.info("bad UDP datagram: %s", exc)
            return
        if self._protocol.faults.silent or self._protocol.faults.down_for() > 0:
            return  # hung or rebooting: the datagram is lost
        session = self._session_for(packet, address)
        if session is None:
            if packet.command != zp.CMD_ACK_OK:
                self._send(zp.pack_packet(zp.CMD_ACK_ERROR_INIT, packet.session_id, packet.reply_id), address)
            return
        session.address = address
        for command, payload in self._protocol.handle(session, packet, self._stopping):
            if session.generation != self._protocol.faults.generation:
                break  # rebooted while sending a chunk: the rest is never sent
            self._send(zp.pack_packet(command, session.session_id, packet.reply_id, payload), address)
        if packet.command == zp.CMD_CONNECT:
            self._remember(session)
        elif session.closed:
            with self._sessions_lock:
                self._sessions.pop(session.session_id, None)

    def _session_for(self, packet: zp.Packet, address: tuple[str, int]) -> _Session | None:
        if packet.command == zp.CMD_CONNECT:
            return self._protocol.new_session("udp", self._waker.wake, address)
        with self._sessions_lock:
            return self._sessions.get(packet.session_id)

    def _remember(self, session: _Session) -> None:
        """Keep a new session, unless a reboot came meanwhile; forget the oldest beyond the limit."""
        with self._sessions_lock:
            if session.generation != self._protocol.faults.generation:
                forgotten = [session]
            else:
                self._sessions[session.session_id] = session
                # UDP clients that never say goodbye would otherwise pile up.
                excess = max(len(self._sessions) - _MAX_UDP_SESSIONS, 0)
                forgotten = [self._sessions.pop(sid) for sid in list(self._sessions)[:excess]]
        for old in forgotten:
            self._protocol.end_session(old)

    def _send_events(self) -> None:
        for session in list(self._sessions.values()):
            record = session.take_event()
            if record is not None and session.address is not None:
                self._send(self._protocol.event_packet(record), session.address)

    def _send(self, packet: bytes, address: tuple[str, int]) -> None:
        try:
            self._sock.sendto(packet, address)
        except OSError as exc:
            log.info("UDP send to %s failed: %s", address, exc)


class ZkSimulator:
    """A simulated ZKTeco terminal serving ``device`` over TCP and/or UDP on one port.

    ``port=0`` picks a free port (the same number for TCP and UDP). With ``password`` set,
    clients must authenticate with the comm key. With ``punch_every_s``, a background thread adds
    a random punch for a random user at the device's current time at that interval (not while
    the device is disabled).

    Faults for tests, safe to switch while clients are connected: :meth:`drop_transfers`,
    :meth:`set_silent`, :meth:`restart`, :attr:`delay_s` and :attr:`live_event_size`.
    """

    def __init__(
        self,
        device: ZkDevice | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        protocol: str = "both",
        password: int = 0,
        punch_every_s: float | None = None,
        seed: int | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if punch_every_s is not None and punch_every_s <= 0:
            raise ValueError("punch_every_s must be positive")
        self.device = device if device is not None else ZkDevice.generate(seed=seed)
        self.host, self.protocol = host, protocol
        self._requested_port, self._port = port, 0
        self._punch_every_s = punch_every_s
        self._rng = random.Random(seed)
        self._faults = Faults()
        self._protocol = _Protocol(self.device, password, self._faults)
        self._tcp: socket.socket | None = None
        self._udp_endpoint: _UdpEndpoint | None = None
        self._udp: socket.socket | None = None
        self._waker = _Waker()
        self._stopping = threading.Event()
        self._no_more_punches = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[_TcpConnection] = set()
        self._lock = threading.Lock()
        self._state = "new"

    @property
    def port(self) -> int:
        """The port served (known once started)."""
        return self._port

    def command_count(self, command: int) -> int:
        """How many packets with this command clients have sent (for tests and benchmarks)."""
        return self._protocol.command_count(command)

    def drop_transfers(self, n: int = 1, *, reset: bool = True) -> None:
        """Cut off the next ``n`` chunk reads (CMD_READ_BUFFER) of buffered downloads midway.

        Over TCP half the reply frame is sent and the connection is reset (or, with
        ``reset=False``, closed in order, which hangs unmodified pyzk); over UDP the client
        gets the prepare and the first data datagram, then nothing. Connecting and other commands
        keep working, so a client can reconnect and retry. ``n=0`` cancels.
        """
        self._faults.drop_transfers(n, reset=reset)

    def refuse(self, *commands: int) -> None:
        """Answer these commands with an error from now on, as firmware without them does (none: stop)."""
        self._faults.refused = frozenset(commands)

    def set_silent(self, silent: bool) -> None:
        """Hang the terminal, or revive it.

        While silent, TCP connections are accepted and kept but nothing is answered, UDP
        datagrams are ignored, and live events are lost (the punches are still logged).
        """
        self._faults.silent = silent

    @property
    def delay_s(self) -> float:
        """Seconds every reply to a command waits before it is sent (live events do not wait).

        Each TCP connection waits in its own thread; UDP clients share one, so they wait in turn.
        """
        return self._faults.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self._faults.delay_s = value

    @property
    def live_event_size(self) -> int | None:
        """Bytes every live event payload is zero-padded or cut to (None: 12 or 32 as usual)."""
        return self._faults.live_event_size

    @live_event_size.setter
    def live_event_size(self, value: int | None) -> None:
        self._faults.live_event_size = value

    @property
    def restarts(self) -> int:
        """How many times :meth:`restart` has rebooted the terminal."""
        return self._faults.generation

    def restart(self, down_s: float = 1.0) -> None:
        """Reboot the terminal; returns at once. Does nothing unless running.

        Every TCP connection is closed and every UDP session and live subscription forgotten now.
        For ``down_s`` seconds TCP connections are refused (the port is not listened on) and UDP
        is ignored; then the terminal serves again on the same port, enabled, with its users,
        log and clock as they were.
        """
        with self._lock:
            if self._state != "running":
                return
            self._faults.go_down(down_s)
            connections, listener = list(self._connections), self._tcp
        if listener is not None:
            # Wakes the accept thread, which closes the listener and opens a new one after down_s.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
        for connection in connections:
            connection.drop()
        if self._udp_endpoint is not None:
            self._udp_endpoint.forget_sessions()
        self._protocol.reboot()
        log.info("ZK simulator %s restarting (down %.1f s)", self.device.serial, down_s)

    def start(self) -> Self:
        """Bind the sockets and start serving in background threads; returns self."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"simulator already {self._state}")
            self._bind()
            self._state = "running"
        if self._tcp is not None:
            self._spawn(self._accept_loop, "zk-sim-accept")
        if self._udp is not None:
            self._udp_endpoint = _UdpEndpoint(self._udp, self._protocol)
            self._udp_endpoint.thread.start()
            self._threads.append(self._udp_endpoint.thread)
        if self._punch_every_s is not None:
            self._spawn(self._punch_loop, "zk-sim-puncher")
        log.info("ZK simulator %s listening on %s:%d (%s)", self.device.serial, self.host, self._port, self.protocol)
        return self

    def stop(self) -> None:
        """Stop serving: close the sockets and join the threads. Safe to call more than once."""
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
        self._stopping.set()
        self._waker.wake()
        if self._udp_endpoint is not None:
            self._udp_endpoint.stop()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.stop()
        for thread in [*self._threads, *(c.thread for c in connections)]:
            thread.join(timeout=5)
        for sock in (self._tcp, self._udp):
            if sock is not None:
                sock.close()
        self._waker.close()
        log.info("ZK simulator %s stopped", self.device.serial)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _bind(self) -> None:
        """Bind TCP first, then UDP to the same port; with port 0, retry if UDP's is taken."""
        for _attempt in range(20):
            tcp = udp = None
            port = self._requested_port
            if self.protocol in ("tcp", "both"):
                tcp = self._listen(port)
                port = tcp.getsockname()[1]
            if self.protocol in ("udp", "both"):
                udp = socket.socket(self._family(), socket.SOCK_DGRAM)
                try:
                    udp.bind((self.host, port))
                except OSError:
                    udp.close()
                    if tcp is None or self._requested_port != 0:
                        raise
                    tcp.close()
                    continue
            self._tcp, self._udp, self._port = tcp, udp, port
            if udp is not None:
                self._port = udp.getsockname()[1]
            return
        raise OSError("no free port found for both TCP and UDP")

    def _family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def _listen(self, port: int) -> socket.socket:
        """A listening TCP socket on ``port`` (0: any free port)."""
        tcp = socket.socket(self._family(), socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.host, port))
            tcp.listen(64)
        except OSError:
            tcp.close()
            raise
        return tcp

    def _accept_loop(self) -> None:
        generation = 0
        while not self._stopping.is_set():
            if self._faults.generation != generation:
                generation = self._faults.generation
                self._reopen_listener()
                continue
            listener = self._tcp
            if listener is None:
                continue  # only when stopping
            readable, _, _ = select.select([listener, self._waker.reader], [], [])
            if listener in readable:
                self._accept(listener, generation)

    def _accept(self, listener: socket.socket, generation: int) -> None:
        try:
            sock, address = listener.accept()
        except OSError as exc:  # also how a listener shut down by restart() wakes us
            log.debug("accept failed: %s", exc)
            return
        # Without NODELAY the small tail of a 64 KiB chunk waits for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            # A client that got in just as the terminal stopped or rebooted is hung up on.
            if self._state != "running" or self._faults.generation != generation:
                sock.close()
                return
            connection = _TcpConnection(sock, f"{address[0]}:{address[1]}", self._protocol)
            self._connections = {c for c in self._connections if c.thread.is_alive()}
            self._connections.add(connection)
        connection.thread.start()

    def _reopen_listener(self) -> None:
        """After a reboot: no listener (connections are refused) until up, then the same port."""
        with self._lock:
            old, self._tcp = self._tcp, None
        if old is not None:
            old.close()
        while not self._stopping.is_set():
            down_for = self._faults.down_for()
            if down_for > 0:
                self._stopping.wait(down_for)
                continue
            try:
                listener = self._listen(self._port)
            except OSError as exc:
                log.warning("cannot listen on port %d again: %s", self._port, exc)
                self._stopping.wait(0.2)
                continue
            with self._lock:
                self._tcp = listener
            return

    def stop_punching(self) -> None:
        """End the background punches (``punch_every_s``); the terminal goes on serving."""
        self._no_more_punches.set()

    def _punch_loop(self) -> None:
        assert self._punch_every_s is not None
        while not self._stopping.wait(self._punch_every_s) and not self._no_more_punches.is_set():
            users = self.device.users
            if not users:
                continue
            user = self._rng.choice(users)
            draw = self._rng.random()
            status = 1 if draw < 0.85 else 15 if draw < 0.95 else 2
            with contextlib.suppress(DeviceDisabled):  # a disabled terminal's keypad is locked
                self.device.add_punch(user.user_id, status=status, punch=self._rng.choice((0, 1)))
