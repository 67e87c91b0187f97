"""Fault modes of the ZKTeco simulator, seen through unmodified pyzk (or a bare client where pyzk
cannot show the fault): dropped transfers, a hung terminal, reboots, slow replies, clock jumps,
a nearly full log, odd live event layouts and a disabled terminal."""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from zk import ZK
from zk.exception import ZKError, ZKNetworkError

from ekinerja.drivers.sim import cli as sim_cli
from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import DeviceDisabled, ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator

REPO = Path(__file__).resolve().parents[2]
TRANSPORTS = [pytest.param(False, id="tcp"), pytest.param(True, id="udp")]
# What pyzk raises when a transfer or a link breaks: its own errors, a bare socket timeout or
# reset, or struct.error on a short packet.
BROKEN = (ZKError, struct.error, TimeoutError, OSError)


def connect(sim: ZkSimulator, *, udp: bool = False, timeout: float = 2) -> Any:
    """A connected pyzk client (typed Any: pyzk has no type hints)."""
    return ZK("127.0.0.1", port=sim.port, timeout=timeout, force_udp=udp, ommit_ping=True).connect()


def wait_until(condition: Callable[[], bool], timeout_s: float = 3) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def tuples(items: list[Any]) -> list[tuple[str, datetime, int, int]]:
    return [(a.user_id, a.timestamp, a.status, a.punch) for a in items]


@pytest.fixture
def sim() -> Iterator[ZkSimulator]:
    # 3,000 records of 40 bytes: 2 chunks over TCP, 8 over UDP; 10 users fit one direct reply.
    with ZkSimulator(ZkDevice.generate(10, 3000, serial="SIMFAULTS001", seed=4)) as simulator:
        yield simulator


class RawClient:
    """A bare ZK client over TCP or UDP, for what pyzk cannot show (event layouts, silence)."""

    def __init__(self, port: int, *, udp: bool) -> None:
        self.udp = udp
        if udp:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.connect(("127.0.0.1", port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.sock.settimeout(2)
        self._deframer = zp.TcpDeframer()
        self._received: list[bytes] = []
        self.session_id = 0
        self._reply_id = 0

    def send(self, command: int, payload: bytes = b"") -> None:
        """Send one packet with the next reply id."""
        self._reply_id += 1
        packet = zp.pack_packet(command, self.session_id, self._reply_id, payload)
        self.sock.sendall(packet if self.udp else zp.tcp_frame(packet))

    def receive(self) -> zp.Packet:
        """The next packet from the terminal (socket timeout if none comes)."""
        if self.udp:
            return zp.unpack_packet(self.sock.recv(1 << 16))
        while not self._received:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("closed by the terminal")
            self._received += self._deframer.feed(data)
        return zp.unpack_packet(self._received.pop(0))

    def command(self, command: int, payload: bytes = b"") -> zp.Packet:
        """Send a command and return its reply."""
        self.send(command, payload)
        return self.receive()

    def subscribe(self) -> None:
        """Connect and register for attendance events (CMD_REG_EVENT with flag 1)."""
        self.session_id = self.command(zp.CMD_CONNECT).session_id
        assert self.command(zp.CMD_REG_EVENT, zp.U32.pack(zp.EF_ATTLOG)).command == zp.CMD_ACK_OK

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_clients() -> Iterator[Callable[[ZkSimulator, bool], RawClient]]:
    clients: list[RawClient] = []

    def make(sim: ZkSimulator, udp: bool) -> RawClient:
        clients.append(RawClient(sim.port, udp=udp))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


# ---------------------------------------------------------------------------- dropped transfers


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_dropped_transfer_fails_and_a_reconnect_gets_every_record(sim: ZkSimulator, udp: bool) -> None:
    expected = tuples(sim.device.records)
    conn = connect(sim, udp=udp, timeout=0.5)
    sim.drop_transfers(2)
    # Small commands and direct replies still work while drops are pending; they use none up.
    conn.read_sizes()
    assert conn.records == 3000
    assert len(conn.get_users()) == 10
    for _attempt in range(2):
        with pytest.raises(BROKEN):
            conn.get_attendance()
        conn = connect(sim, udp=udp, timeout=0.5)
    assert tuples(conn.get_attendance()) == expected
    # Each dropped chunk took one drop: 2 reads cut, then all chunks of the third download.
    chunks = 8 if udp else 2
    assert sim.command_count(zp.CMD_READ_BUFFER) == 2 + chunks


def test_dropped_tcp_chunk_is_cut_midway_then_reset(sim: ZkSimulator) -> None:
    client = RawClient(sim.port, udp=False)
    client.session_id = client.command(zp.CMD_CONNECT).session_id
    prepare = client.command(zp.CMD_PREPARE_BUFFER, struct.pack("<bhii", 1, zp.CMD_ATTLOG_RRQ, 0, 0))
    assert prepare.command == zp.CMD_ACK_OK
    sim.drop_transfers()
    client.send(zp.CMD_READ_BUFFER, struct.pack("<ii", 0, 1000))
    received = b""
    with pytest.raises(ConnectionResetError):
        while chunk := client.sock.recv(1 << 16):
            received += chunk
    # At most half of the 1,016-byte frame, never the whole reply.
    assert len(received) <= (8 + 8 + 1000) // 2
    client.close()


# ---------------------------------------------------------------------------- a hung terminal


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_silent_terminal_times_out_and_answers_again(sim: ZkSimulator, udp: bool) -> None:
    conn = connect(sim, udp=udp, timeout=0.3)
    sim.set_silent(True)
    with pytest.raises(ZKNetworkError, match="timed out"):
        conn.get_time()
    with pytest.raises(ZKNetworkError, match="timed out"):
        connect(sim, udp=udp, timeout=0.3)
    sim.set_silent(False)
    assert conn.get_serialnumber() == "SIMFAULTS001"
    assert connect(sim, udp=udp, timeout=0.3).get_serialnumber() == "SIMFAULTS001"


def test_silent_terminal_keeps_tcp_connections_open(sim: ZkSimulator) -> None:
    sim.set_silent(True)
    client = RawClient(sim.port, udp=False)  # a new connection is still accepted
    client.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):  # neither an answer nor a hang-up
        client.command(zp.CMD_CONNECT)
    sim.set_silent(False)
    assert client.command(zp.CMD_CONNECT).command == zp.CMD_ACK_OK
    client.close()


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_events_during_silence_are_lost_but_logged(
    sim: ZkSimulator, udp: bool, raw_clients: Callable[[ZkSimulator, bool], RawClient]
) -> None:
    client = raw_clients(sim, udp)
    client.subscribe()
    sim.set_silent(True)
    lost = sim.device.add_punch("1002")
    sim.set_silent(False)
    kept = sim.device.add_punch("1003")
    event = client.receive()
    assert event.command == zp.CMD_REG_EVENT
    assert event.payload == sim.device.event_payload(kept)
    client.send(zp.CMD_ACK_OK)
    client.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        client.receive()
    assert sim.device.records[-2:] == [lost, kept]


# ---------------------------------------------------------------------------- reboots


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_restart_drops_clients_refuses_while_down_then_serves(
    sim: ZkSimulator, udp: bool, raw_clients: Callable[[ZkSimulator, bool], RawClient]
) -> None:
    expected, now = tuples(sim.device.records), sim.device.now()
    conn = connect(sim, udp=udp, timeout=0.3)
    raw_clients(sim, udp).subscribe()
    assert sim.device.listener_count == 1
    sim.restart(down_s=1.0)
    assert sim.restarts == 1
    assert sim.device.listener_count == 0
    with pytest.raises(BROKEN):
        conn.read_sizes()
    started = time.monotonic()
    with pytest.raises(ZKNetworkError):
        # Over TCP the connection is refused at once; over UDP the datagram is ignored.
        connect(sim, udp=udp, timeout=0.3)
    assert time.monotonic() - started < 1.5  # neither waits for the terminal to come back
    assert wait_until(lambda: _connects(sim, udp), timeout_s=3)
    conn = connect(sim, udp=udp)
    assert tuples(conn.get_attendance()) == expected
    assert abs(conn.get_time() - now) < timedelta(seconds=5)


def _connects(sim: ZkSimulator, udp: bool) -> bool:
    try:
        connect(sim, udp=udp, timeout=0.2).disconnect()
    except BROKEN:
        return False
    return True


def test_restart_during_download_and_stop_while_down() -> None:
    device = ZkDevice.generate(50, 100_000, seed=2)
    sim = ZkSimulator(device).start()
    port = sim.port
    outcome: list[BaseException | int] = []
    conn = connect(sim)
    sim.delay_s = 0.02  # 62 chunks: more than a second, so the reboot lands mid-download

    def download() -> None:
        try:
            outcome.append(len(conn.read_with_buffer(zp.CMD_ATTLOG_RRQ)[0]))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=download)
    thread.start()
    assert wait_until(lambda: sim.command_count(zp.CMD_READ_BUFFER) > 2)
    sim.restart(down_s=0.1)
    thread.join(timeout=5)
    assert outcome and isinstance(outcome[0], BROKEN)
    sim.delay_s = 0
    assert wait_until(lambda: _connects(sim, False))
    sim.restart(down_s=30)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3
    sim.restart()  # a stopped simulator ignores it
    assert sim.restarts == 2
    with pytest.raises(ZKNetworkError):
        ZK("127.0.0.1", port=port, timeout=0.3, ommit_ping=True).connect()


# ---------------------------------------------------------------------------- slow replies


def test_delay_slows_replies_of_one_simulator_only() -> None:
    with ZkSimulator(ZkDevice(serial="SLOW")) as slow, ZkSimulator(ZkDevice(serial="FAST")) as fast:
        slow_conn, fast_conn = connect(slow, timeout=5), connect(fast, timeout=5)
        slow.delay_s = 0.6
        assert slow.delay_s == 0.6
        finished: list[str] = []

        def ask(name: str, conn: Any) -> None:
            conn.get_time()
            finished.append(name)

        started = time.monotonic()
        slow_thread = threading.Thread(target=ask, args=("slow", slow_conn))
        slow_thread.start()
        time.sleep(0.05)
        ask("fast", fast_conn)
        slow_thread.join()
        assert finished == ["fast", "slow"]
        assert time.monotonic() - started >= 0.55
        slow.delay_s = 0
        started = time.monotonic()
        slow_conn.get_time()
        assert time.monotonic() - started < 0.5


def test_delay_is_per_tcp_connection_and_live_events_do_not_wait(
    sim: ZkSimulator, raw_clients: Callable[[ZkSimulator, bool], RawClient]
) -> None:
    watcher = raw_clients(sim, False)
    watcher.subscribe()
    conns = [connect(sim, timeout=5) for _ in range(2)]
    sim.delay_s = 2.0
    started = time.monotonic()
    record = sim.device.add_punch("1004")
    assert watcher.receive().payload == sim.device.event_payload(record)
    assert time.monotonic() - started < 1.5  # not held back by the 2 s reply delay
    threads = [threading.Thread(target=conn.get_time) for conn in conns]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Both waited at once, in their own threads: in turn they would need 4 s.
    assert 1.9 <= time.monotonic() - started < 3.5


# ---------------------------------------------------------------------------- clock and capacity


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_jump_clock_moves_the_terminal_time(sim: ZkSimulator, udp: bool) -> None:
    conn = connect(sim, udp=udp)
    before = conn.get_time()
    sim.device.jump_clock(3600)
    assert abs(conn.get_time() - before - timedelta(hours=1)) < timedelta(seconds=3)
    sim.device.jump_clock(-86400.5)
    assert abs(conn.get_time() - before + timedelta(hours=23)) < timedelta(seconds=3)


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_record_capacity_changes_at_runtime(udp: bool) -> None:
    device = ZkDevice.generate(3, 60, seed=1, rec_cap=1000)
    with ZkSimulator(device) as sim:
        conn = connect(sim, udp=udp)
        conn.read_sizes()
        assert (conn.rec_cap, conn.records, conn.rec_av) == (1000, 60, 940)
        device.rec_cap = 62  # nearly full
        conn.read_sizes()
        assert (conn.rec_cap, conn.rec_av) == (62, 2)
        for _ in range(3):
            device.add_punch("1001")
        conn.read_sizes()
        assert (conn.rec_cap, conn.records, conn.rec_av) == (62, 63, 0)


def test_cli_capacity_and_delay() -> None:
    parser = argparse.ArgumentParser()
    sim_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sim", "zk"])
    assert (args.capacity, args.delay) == (100000, 0.0)
    args = parser.parse_args(["sim", "zk", "--capacity", "5000", "--delay", "0.25"])
    assert (args.capacity, args.delay) == (5000, 0.25)
    for bad in (["--capacity", "0"], ["--capacity", "many"], ["--delay", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["sim", "zk", *bad])


def test_cli_serves_capacity_and_delay() -> None:
    command = [
        sys.executable, "-m", "ekinerja.drivers.sim.cli", "zk", "--port", "0", "--users", "2",
        "--records", "5", "--capacity", "7", "--delay", "0.3",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env
    ) as process:
        assert process.stdout is not None
        match = re.search(r"127\.0\.0\.1:(\d+) ", process.stdout.readline())
        assert match
        conn = ZK("127.0.0.1", port=int(match.group(1)), timeout=5, ommit_ping=True).connect()
        started = time.monotonic()
        conn.read_sizes()
        assert time.monotonic() - started >= 0.25
        assert (conn.rec_cap, conn.records, conn.rec_av) == (7, 5, 2)
        process.terminate()
        assert process.wait(timeout=10) == 0


# ---------------------------------------------------------------------------- live event layouts


@pytest.mark.parametrize(
    ("udp", "record_format", "size"),
    [(False, 8, 14), (True, 8, 14), (False, 40, 14), (False, 40, 40), (True, 16, 40)],
    ids=["tcp-12-to-14", "udp-12-to-14", "tcp-32-to-14", "tcp-32-to-40", "udp-12-to-40"],
)
def test_live_event_size_pads_or_cuts_the_payload(
    udp: bool, record_format: int, size: int, raw_clients: Callable[[ZkSimulator, bool], RawClient]
) -> None:
    with ZkSimulator(ZkDevice.generate(3, 0, record_format=record_format, seed=1)) as sim:
        assert sim.live_event_size is None
        client = raw_clients(sim, udp)
        client.subscribe()
        sim.live_event_size = size
        record = sim.device.add_punch("1002", status=15, punch=1)
        event = client.receive()
        assert (event.command, event.session_id) == (zp.CMD_REG_EVENT, zp.EF_ATTLOG)
        assert len(event.payload) == size
        usual = sim.device.event_payload(record)
        assert event.payload == usual[:size].ljust(size, b"\x00")
        client.send(zp.CMD_ACK_OK)
        sim.live_event_size = None
        record = sim.device.add_punch("1003")
        assert client.receive().payload == sim.device.event_payload(record)


# ---------------------------------------------------------------------------- a disabled terminal


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_disabled_terminal_cannot_be_punched_until_its_session_ends(sim: ZkSimulator, udp: bool) -> None:
    conn = connect(sim, udp=udp)
    assert conn.disable_device() is True
    assert sim.device.enabled is False
    count = sim.device.record_count
    with pytest.raises(DeviceDisabled):
        sim.device.add_punch("1001")
    assert sim.device.record_count == count
    other = connect(sim, udp=not udp)
    other.disconnect()  # another client's session ending changes nothing
    assert sim.device.enabled is False
    conn.disconnect()  # without enable_device(): the terminal re-enables itself
    assert sim.device.enabled is True
    sim.device.add_punch("1001")


def test_dropped_link_and_restart_re_enable_the_terminal(sim: ZkSimulator) -> None:
    conn = connect(sim)
    conn.disable_device()
    conn._ZK__sock.close()  # the link drops: no EXIT, no enable
    assert wait_until(lambda: sim.device.enabled)
    conn = connect(sim, udp=True)
    conn.disable_device()
    conn.enable_device()
    conn.disable_device()
    assert sim.device.enabled is False
    sim.restart(down_s=0)  # UDP sessions only end with EXIT or a reboot
    assert sim.device.enabled is True


def test_puncher_skips_turns_while_disabled() -> None:
    with ZkSimulator(ZkDevice.generate(3, 0, seed=1), punch_every_s=0.01, seed=1) as sim:
        conn = connect(sim)
        conn.disable_device()
        count = sim.device.record_count
        time.sleep(0.2)
        assert sim.device.record_count == count
        conn.enable_device()
        assert wait_until(lambda: sim.device.record_count > count)
