"""A simulated ZKTeco terminal on real sockets, good enough for unmodified pyzk 0.9.

TCP and UDP are served on one port, as terminals do. Each TCP client gets a thread; all UDP
clients share one. Commands are answered by :class:`_Protocol`, a dispatch table that knows
nothing about sockets: it returns the packets to send and the transport frames them. Over TCP a
reply is always one ZK packet in one ``sendall`` because pyzk reads each reply with one ``recv``.

Live events follow the terminal's pace: one event is in flight per client, and the next is sent
only once the client has acknowledged the previous one, since pyzk cannot parse two events that
arrive in one TCP segment.
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
from ekinerja.drivers.sim.zk_device import ZkDevice, ZkRecord
from ekinerja.drivers.zk_records import decode_time

log = logging.getLogger("ekinerja.sim.zk")

PROTOCOLS = ("tcp", "udp", "both")
# Datasets up to this size are answered to the prepare command at once (a UDP reply must fit
# pyzk's 1024-byte receive); larger ones are read in chunks.
_DIRECT_DATA_MAX = 1024 - zp.HEADER.size
_UDP_DATA_MAX = 1024
_EVENT_ACK_TIMEOUT_S = 5.0
_MAX_UDP_SESSIONS = 64

Reply = tuple[int, bytes]


@dataclass(eq=False)
class _Session:
    """One client's state: its session id, authentication, read buffer and live events."""

    transport: str
    wake: Callable[[], None]
    address: tuple[str, int] | None = None
    session_id: int = 0
    connected: bool = False
    authenticated: bool = False
    closed: bool = False
    buffer: bytes | None = None
    unsubscribe: Callable[[], None] | None = None
    pending: deque[ZkRecord] = field(default_factory=deque)
    in_flight_since: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue_event(self, record: ZkRecord) -> None:
        """Device listener: queue a punch for this client and wake its transport thread."""
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
        unsubscribe, self.unsubscribe = self.unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        with self.lock:
            self.pending.clear()
            self.in_flight_since = None


class _Protocol:
    """Answers ZK commands for one device; shared by every session of a simulator."""

    def __init__(self, device: ZkDevice, password: int) -> None:
        self.device = device
        self.password = password
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

    def handle(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        """The replies to one packet (none for a client's ACK of a live event)."""
        with self._counts_lock:
            self._counts[packet.command] += 1
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
        session.stop_events()
        session.closed = True
        session.connected = False
        return [(zp.CMD_ACK_OK, b"")]

    def _enable(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self.device.enabled = True
        return [(zp.CMD_ACK_OK, b"")]

    def _disable(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        self.device.enabled = False
        return [(zp.CMD_ACK_OK, b"")]

    def _options(self, session: _Session, packet: zp.Packet) -> list[Reply]:
        # Unknown options answer an empty value, which pyzk reads as 0 / "".
        name = packet.payload.split(b"\x00", 1)[0].decode(errors="replace")
        value = self.device.options().get(name, "")
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
        if session.transport == "tcp":
            return [(zp.CMD_DATA, chunk)]
        replies: list[Reply] = [(zp.CMD_PREPARE_DATA, zp.U32.pack(len(chunk)))]
        replies += [(zp.CMD_DATA, chunk[at : at + _UDP_DATA_MAX]) for at in range(0, len(chunk), _UDP_DATA_MAX)]
        replies.append((zp.CMD_ACK_OK, b""))
        return replies

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
        """A pushed attendance event: command 500 with the event code in the session field."""
        return zp.pack_packet(zp.CMD_REG_EVENT, zp.EF_ATTLOG, 0, self.device.event_payload(record))


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
        self._stopping = False
        self.session = _Session(transport="tcp", wake=self._waker.wake)
        self.thread = threading.Thread(target=self._run, name=f"zk-sim-tcp-{peer}", daemon=True)

    def stop(self) -> None:
        """Ask the thread to finish (it closes the socket itself)."""
        self._stopping = True
        self._waker.wake()

    def _run(self) -> None:
        try:
            self._serve()
        except (OSError, ValueError) as exc:
            log.info("TCP client %s dropped: %s", self._peer, exc)
        finally:
            self.session.stop_events()
            self._sock.close()
            self._waker.close()
            log.debug("TCP client %s closed", self._peer)

    def _serve(self) -> None:
        deframer = zp.TcpDeframer()
        while not self._stopping:
            timeout = 0.5 if self.session.waiting_for_ack() else None
            readable, _, _ = select.select([self._sock, self._waker.reader], [], [], timeout)
            if self._waker.reader in readable:
                self._waker.drain()
            if self._sock in readable:
                data = self._sock.recv(1 << 16)
                if not data:  # includes pyzk's probe, which connects and closes at once
                    return
                for raw in deframer.feed(data):
                    self._answer(zp.unpack_packet(raw))
                    if self.session.closed:
                        return
            self._send_event()

    def _answer(self, packet: zp.Packet) -> None:
        for command, payload in self._protocol.handle(self.session, packet):
            reply = zp.pack_packet(command, self.session.session_id, packet.reply_id, payload)
            self._sock.sendall(zp.tcp_frame(reply))

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
        self._stopping = False
        self._sessions: dict[int, _Session] = {}
        self.thread = threading.Thread(target=self._run, name="zk-sim-udp", daemon=True)

    def stop(self) -> None:
        """Ask the thread to finish and drop the sessions."""
        self._stopping = True
        self._waker.wake()

    def _run(self) -> None:
        try:
            while not self._stopping:
                waiting = any(s.waiting_for_ack() for s in self._sessions.values())
                readable, _, _ = select.select([self._sock, self._waker.reader], [], [], 0.5 if waiting else None)
                if self._waker.reader in readable:
                    self._waker.drain()
                if self._sock in readable:
                    self._receive()
                self._send_events()
        finally:
            for session in self._sessions.values():
                session.stop_events()
            self._waker.close()

    def _receive(self) -> None:
        try:
            data, address = self._sock.recvfrom(1 << 16)
            packet = zp.unpack_packet(data)
        except (OSError, ValueError) as exc:
            log.info("bad UDP datagram: %s", exc)
            return
        session = self._session_for(packet, address)
        if session is None:
            if packet.command != zp.CMD_ACK_OK:
                self._send(zp.pack_packet(zp.CMD_ACK_ERROR_INIT, packet.session_id, packet.reply_id), address)
            return
        session.address = address
        for command, payload in self._protocol.handle(session, packet):
            self._send(zp.pack_packet(command, session.session_id, packet.reply_id, payload), address)
        if packet.command == zp.CMD_CONNECT:
            self._sessions[session.session_id] = session
            self._forget_oldest()
        elif session.closed:
            self._sessions.pop(session.session_id, None)

    def _session_for(self, packet: zp.Packet, address: tuple[str, int]) -> _Session | None:
        if packet.command == zp.CMD_CONNECT:
            return _Session(transport="udp", wake=self._waker.wake, address=address)
        return self._sessions.get(packet.session_id)

    def _forget_oldest(self) -> None:
        # UDP clients that never say goodbye would otherwise pile up.
        while len(self._sessions) > _MAX_UDP_SESSIONS:
            oldest = next(iter(self._sessions))
            self._sessions.pop(oldest).stop_events()

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
    a random punch for a random user at the device's current time at that interval.
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
        self._protocol = _Protocol(self.device, password)
        self._tcp: socket.socket | None = None
        self._udp_endpoint: _UdpEndpoint | None = None
        self._udp: socket.socket | None = None
        self._waker = _Waker()
        self._stopping = threading.Event()
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
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _attempt in range(20):
            tcp = udp = None
            port = self._requested_port
            if self.protocol in ("tcp", "both"):
                tcp = socket.socket(family, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, port))
                tcp.listen(64)
                port = tcp.getsockname()[1]
            if self.protocol in ("udp", "both"):
                udp = socket.socket(family, socket.SOCK_DGRAM)
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

    def _accept_loop(self) -> None:
        assert self._tcp is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._tcp, self._waker.reader], [], [])
            if self._tcp not in readable:
                continue
            try:
                sock, address = self._tcp.accept()
            except OSError as exc:
                log.info("accept failed: %s", exc)
                continue
            # Without NODELAY the small tail of a 64 KiB chunk waits for the client's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _TcpConnection(sock, f"{address[0]}:{address[1]}", self._protocol)
            with self._lock:
                if self._state != "running":
                    sock.close()
                    return
                self._connections = {c for c in self._connections if c.thread.is_alive()}
                self._connections.add(connection)
            connection.thread.start()

    def _punch_loop(self) -> None:
        assert self._punch_every_s is not None
        while not self._stopping.wait(self._punch_every_s):
            users = self.device.users
            if not users:
                continue
            user = self._rng.choice(users)
            draw = self._rng.random()
            status = 1 if draw < 0.85 else 15 if draw < 0.95 else 2
            self.device.add_punch(user.user_id, status=status, punch=self._rng.choice((0, 1)))
