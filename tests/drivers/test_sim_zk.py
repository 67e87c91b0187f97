"""The ZKTeco terminal simulator, driven by unmodified pyzk over real TCP and UDP sockets."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from zk import ZK
from zk.base import make_commkey
from zk.exception import ZKErrorResponse, ZKNetworkError

from ekinerja.drivers.sim import cli as sim_cli
from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import ZkDevice, ZkRecord
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zk_records import decode_time

REPO = Path(__file__).resolve().parents[2]
TRANSPORTS = [pytest.param(False, id="tcp"), pytest.param(True, id="udp")]


def wib_now() -> datetime:
    """Wall-clock time where the simulated terminal hangs (its default zone, WIB)."""
    return datetime.now(ZoneInfo("Asia/Jakarta")).replace(tzinfo=None)


def connect(sim: ZkSimulator, *, udp: bool = False, password: int = 0) -> Any:
    """A connected pyzk client (typed Any: pyzk has no type hints)."""
    client = ZK("127.0.0.1", port=sim.port, timeout=5, password=password, force_udp=udp, ommit_ping=True)
    return client.connect()


def record_tuples(records: list[ZkRecord]) -> list[tuple[str, datetime, int, int]]:
    return [(r.user_id, r.timestamp, r.status, r.punch) for r in records]


def attendance_tuples(attendances: list[Any]) -> list[tuple[str, datetime, int, int]]:
    return [(a.user_id, a.timestamp, a.status, a.punch) for a in attendances]


@pytest.fixture
def sim() -> Iterator[ZkSimulator]:
    device = ZkDevice.generate(12, 60, serial="SIMFIXTURE01", seed=7)
    with ZkSimulator(device) as simulator:
        yield simulator


# ---------------------------------------------------------------------------- wire pieces


def test_time_encoding_round_trips_and_refuses_impossible_dates() -> None:
    moment = datetime(2024, 12, 31, 23, 59, 58)
    assert zp.encode_time(moment) == ((24 * 12 + 11) * 31 + 30) * 86400 + 86398
    assert decode_time(zp.encode_time(moment)) == moment
    assert decode_time(0) == datetime(2000, 1, 1)
    with pytest.raises(ValueError):
        decode_time(zp.encode_time_parts(2024, 2, 31, 8, 0, 0))
    assert zp.time_hex(moment) == bytes((24, 12, 31, 23, 59, 58))
    assert zp.decode_time_hex(zp.time_hex(moment)) == moment
    with pytest.raises(ValueError):
        zp.decode_time_hex(bytes((24, 4, 31, 8, 0, 0)))


def test_checksum_matches_packets_pyzk_sends() -> None:
    # CONNECT as pyzk 0.9 sends it (summed with reply id 65534, sent with 0), and a reply of ours.
    connect_packet = zp.unpack_packet(bytes.fromhex("e80317fc00000000"))
    assert zp.checksum(bytes.fromhex("e8030000 0000feff")) == 0xFC17
    assert zp.checksum_matches(connect_packet)
    ours = zp.unpack_packet(zp.pack_packet(zp.CMD_ACK_OK, 1234, 7, b"abc"))
    assert (ours.command, ours.session_id, ours.reply_id, ours.payload) == (2000, 1234, 7, b"abc")
    assert zp.checksum_matches(ours)
    assert not zp.checksum_matches(zp.Packet(2000, ours.checksum ^ 1, 1234, 7, b"abc"))
    assert zp.checksum(b"") == 0xFFFE  # zkemsdk's complement lands one below 0xFFFF


@pytest.mark.parametrize(("password", "session"), [(0, 0), (1, 1), (123456, 40000), (999999, 65534)])
def test_comm_key_agrees_with_pyzk(password: int, session: int) -> None:
    assert zp.make_comm_key(password, session) == make_commkey(password, session)


def test_tcp_deframer_splits_and_joins_packets() -> None:
    first = zp.tcp_frame(zp.pack_packet(1000, 0, 1))
    second = zp.tcp_frame(zp.pack_packet(11, 5, 2, b"~SerialNumber\x00"))
    deframer = zp.TcpDeframer()
    stream = first + second
    assert deframer.feed(stream[:5]) == []
    packets = deframer.feed(stream[5:20]) + deframer.feed(stream[20:])
    assert [zp.unpack_packet(p).command for p in packets] == [1000, 11]
    with pytest.raises(ValueError):
        zp.TcpDeframer().feed(b"GET / HTTP/1.1\r\n")


# ---------------------------------------------------------------------------- pyzk end to end


@pytest.mark.parametrize("password", [0, 4321])
@pytest.mark.parametrize("user_format", [28, 72])
@pytest.mark.parametrize("record_format", [8, 16, 40])
@pytest.mark.parametrize("udp", TRANSPORTS)
def test_pyzk_reads_identity_sizes_users_and_attendance(
    udp: bool, record_format: int, user_format: int, password: int
) -> None:
    device = ZkDevice.generate(
        15, 80, record_format=record_format, user_format=user_format, serial="SIMMATRIX001", seed=3
    )
    with ZkSimulator(device, password=password) as sim:
        conn = connect(sim, udp=udp, password=password)
        assert conn.get_firmware_version() == device.firmware
        assert conn.get_serialnumber() == "SIMMATRIX001"
        conn.read_sizes()
        assert (conn.users, conn.records) == (15, 80)
        assert (conn.fingers_cap, conn.users_cap, conn.rec_cap) == (3000, 3000, 100000)
        assert (conn.users_av, conn.rec_av) == (3000 - 15, 100000 - 80)
        users = conn.get_users()
        assert [(u.uid, u.user_id, u.name, u.privilege, u.card, u.group_id) for u in users] == [
            (u.uid, u.user_id, u.name, u.privilege, u.card, u.group_id) for u in device.users
        ]
        assert len(users[0].name) <= (8 if user_format == 28 else 24)
        attendances = conn.get_attendance()
        assert attendance_tuples(attendances) == record_tuples(device.records)
        assert [a.uid for a in attendances] == [r.uid for r in device.records]
        conn.disconnect()


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_wrong_password_is_refused(udp: bool) -> None:
    with ZkSimulator(ZkDevice.generate(2, 2, seed=1), password=1111) as sim:
        with pytest.raises(ZKErrorResponse, match="Unauthenticated"):
            connect(sim, udp=udp, password=2222)
        with pytest.raises(ZKErrorResponse, match="Unauthenticated"):
            connect(sim, udp=udp, password=0)
        assert connect(sim, udp=udp, password=1111).get_serialnumber() == "SIM0000000001"


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_clock_offset_and_set_time(udp: bool) -> None:
    device = ZkDevice(clock_offset_s=-7200)
    with ZkSimulator(device) as sim:
        conn = connect(sim, udp=udp)
        assert abs(conn.get_time() - (wib_now() - timedelta(hours=2))) < timedelta(seconds=3)
        target = datetime(2031, 5, 17, 9, 45, 12)
        assert conn.set_time(target) is True
        assert abs(device.now() - target) < timedelta(seconds=3)
        assert abs(conn.get_time() - target) < timedelta(seconds=3)
        assert abs(device.clock_offset_s - (target - wib_now()).total_seconds()) < 3


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_clear_attendance_empties_the_log(sim: ZkSimulator, udp: bool) -> None:
    conn = connect(sim, udp=udp)
    conn.read_sizes()
    assert conn.records == 60
    assert conn.clear_attendance() is True
    conn.read_sizes()
    assert (conn.records, conn.users) == (0, 12)
    assert conn.get_attendance() == []
    assert sim.device.records == []


def _capture(conn: Any, device: ZkDevice, punches: list[tuple[str, int, int]]) -> list[Any]:
    """Run pyzk's live capture while another thread adds ``punches`` once it is subscribed."""

    def feeder() -> None:
        deadline = time.monotonic() + 5
        while device.listener_count == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        for user_id, status, punch in punches:
            device.add_punch(user_id, status=status, punch=punch)

    thread = threading.Thread(target=feeder)
    thread.start()
    events: list[Any] = []
    deadline = time.monotonic() + 10
    for event in conn.live_capture(new_timeout=1):
        if event is not None:
            events.append(event)
        if len(events) == len(punches) or time.monotonic() > deadline:
            conn.end_live_capture = True
    thread.join()
    return events


@pytest.mark.parametrize(
    ("udp", "record_format"),
    [(False, 8), (False, 16), (False, 40), (True, 8), (True, 40)],
    ids=["tcp-8", "tcp-16", "tcp-40", "udp-8", "udp-40"],
)
def test_live_capture_receives_punches_one_by_one(udp: bool, record_format: int) -> None:
    device = ZkDevice.generate(6, 10, record_format=record_format, seed=5)
    with ZkSimulator(device) as sim:
        conn = connect(sim, udp=udp)
        punches = [("1002", 1, 0), ("1005", 15, 1), ("1002", 2, 1), ("1001", 1, 4)]
        events = _capture(conn, device, punches)
        added = device.records[-len(punches) :]
        assert attendance_tuples(events) == record_tuples(added)
        assert [e.uid for e in events] == [2, 5, 2, 1]
        assert device.listener_count == 0  # pyzk's reg_event(0) unsubscribed
        # The connection is still usable after the capture.
        conn.read_sizes()
        assert conn.records == 14


def test_live_capture_is_only_for_subscribed_clients(sim: ZkSimulator) -> None:
    watcher = connect(sim)
    bystander = connect(sim, udp=True)
    events = _capture(watcher, sim.device, [("1003", 1, 0)])
    assert [e.user_id for e in events] == ["1003"]
    # The bystander never subscribed: its next reply is a reply, not a stray event.
    assert bystander.get_serialnumber() == "SIMFIXTURE01"


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_download_larger_than_one_chunk(udp: bool) -> None:
    device = ZkDevice.generate(40, 5000, record_format=40, seed=11)
    with ZkSimulator(device) as sim:
        conn = connect(sim, udp=udp)
        attendances = conn.get_attendance()
        assert len(attendances) == 5000
        assert attendance_tuples(attendances) == record_tuples(device.records)
        # Records, 200,004 bytes: 4 chunks of at most 65,472 bytes over TCP, 13 of 16 KiB over UDP;
        # plus one chunk for the users (2,884 bytes: too big to answer the prepare directly).
        assert sim.command_count(zp.CMD_READ_BUFFER) == (13 + 1 if udp else 4 + 1)
        assert sim.command_count(zp.CMD_FREE_DATA) >= 1


def test_raw_datasets_have_the_documented_layout(sim: ZkSimulator) -> None:
    conn = connect(sim)
    data, size = conn.read_with_buffer(zp.CMD_ATTLOG_RRQ)
    assert size == len(data) == 4 + 60 * 40
    assert data == sim.device.attendance_dataset()
    assert int.from_bytes(data[:4], "little") == 60 * 40
    first = sim.device.records[0]
    assert data[4:6] == first.uid.to_bytes(2, "little")
    assert data[6:30].rstrip(b"\x00").decode() == first.user_id
    assert decode_time(int.from_bytes(data[31:35], "little")) == first.timestamp
    users, users_size = conn.read_with_buffer(zp.CMD_USERTEMP_RRQ, zp.FCT_USER)
    assert users == sim.device.users_dataset()
    assert users_size == 4 + 12 * 72


def test_100k_records_transfer_whole() -> None:
    # How fast is for bench/zk_download.py; here only that a full-size log arrives intact.
    device = ZkDevice.generate(500, 100_000, record_format=40, seed=2)
    dataset = device.attendance_dataset()
    with ZkSimulator(device) as sim:
        conn = connect(sim)
        conn.read_sizes()
        assert conn.records == 100_000
        data, size = conn.read_with_buffer(zp.CMD_ATTLOG_RRQ)
        assert size == 4_000_004
        assert data == dataset


@pytest.mark.parametrize("udp", TRANSPORTS)
def test_impossible_date_aborts_pyzk_download(udp: bool) -> None:
    device = ZkDevice.generate(3, 10, record_format=40, seed=1)
    device.add_bad_date_record("1002", 2025, 2, 31, 7, 30, 0)
    device.add_punch("1001", datetime(2025, 3, 3, 7, 31, 0))
    with ZkSimulator(device) as sim:
        conn = connect(sim, udp=udp)
        conn.read_sizes()
        assert conn.records == 12
        assert len(device.records) == 11
        with pytest.raises(ValueError):
            conn.get_attendance()


def test_other_commands_answer_like_a_terminal(sim: ZkSimulator) -> None:
    conn = connect(sim)
    assert conn.get_platform() == "ZMM220_TFT"
    assert conn.get_mac() == "00:17:61:00:00:01"
    assert conn.get_device_name() == "K40"
    assert conn.get_pin_width() == 9
    assert conn.get_extend_fmt() == 1
    assert conn.get_user_extend_fmt() == 1
    assert (conn.get_face_fun_on(), conn.get_compat_old_firmware(), conn.get_face_version()) == (0, 0, 0)
    assert conn.get_fp_version() == 10
    assert conn.get_network_params()["mask"] == "255.255.255.0"
    assert conn.disable_device() is True
    assert sim.device.enabled is False
    assert conn.enable_device() is True
    assert sim.device.enabled is True
    assert conn.test_voice(0) is True
    assert conn.refresh_data() is True
    assert conn.free_data() is True
    assert conn.cancel_capture() is True
    assert conn.verify_user() is True
    assert conn.unlock(1) is True
    assert conn.get_templates() == []
    assert conn.disconnect() is True
    assert sim.command_count(zp.CMD_EXIT) == 1


def test_clear_data_removes_users_and_records(sim: ZkSimulator) -> None:
    # pyzk 0.9's clear_data() cannot send (it concatenates str to bytes), so clear the device.
    conn = connect(sim, udp=True)
    sim.device.clear_data()
    conn.read_sizes()
    assert (conn.users, conn.records) == (0, 0)
    assert conn.get_users() == []


def test_concurrent_clients_over_both_transports(sim: ZkSimulator) -> None:
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def reader(name: str, udp: bool) -> None:
        try:
            conn = connect(sim, udp=udp)
            for _ in range(3):
                results[name] = len(conn.get_attendance())
            conn.disconnect()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(f"c{i}", i % 2 == 1)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == {"c0": 60, "c1": 60, "c2": 60, "c3": 60}


def test_background_puncher_adds_records_at_device_time() -> None:
    device = ZkDevice.generate(4, 0, seed=1, clock_offset_s=86400)
    with ZkSimulator(device, punch_every_s=0.02, seed=1):
        deadline = time.monotonic() + 5
        while device.record_count < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    records = device.records
    assert len(records) >= 5
    assert {r.user_id for r in records} <= {"1001", "1002", "1003", "1004"}
    tomorrow = wib_now() + timedelta(days=1)
    assert all(abs(r.timestamp - tomorrow) < timedelta(seconds=10) for r in records)


def test_tcp_only_and_udp_only_servers() -> None:
    with ZkSimulator(ZkDevice(), protocol="udp") as sim:
        assert connect(sim, udp=True).get_serialnumber() == "SIM0000000001"
        with pytest.raises(ZKNetworkError):
            connect(sim)
    with ZkSimulator(ZkDevice(serial="TCPONLY"), protocol="tcp") as sim:
        assert connect(sim).get_serialnumber() == "TCPONLY"


def test_stop_is_idempotent_and_closes_the_port() -> None:
    sim = ZkSimulator(ZkDevice()).start()
    port = sim.port
    assert port > 0
    conn = connect(sim)
    sim.stop()
    sim.stop()
    with pytest.raises(ZKNetworkError):
        conn.get_serialnumber()
    with pytest.raises(ZKNetworkError):
        ZK("127.0.0.1", port=port, timeout=1, ommit_ping=True).connect()


def test_generated_punches_look_like_office_hours() -> None:
    device = ZkDevice.generate(30, 600, seed=9, start=datetime(2025, 3, 3))
    records = device.records
    assert len(records) == 600
    assert records == sorted(records, key=lambda r: r.timestamp)
    assert all(r.timestamp.weekday() < 5 for r in records)
    assert records[0].timestamp.date() == datetime(2025, 3, 3).date()
    ins = [r for r in records if r.punch == 0]
    outs = [r for r in records if r.punch == 1]
    assert ins and outs and len(ins) + len(outs) == 600
    assert all(6 <= r.timestamp.hour <= 9 for r in ins)
    assert all(15 <= r.timestamp.hour <= 18 for r in outs)
    assert {r.status for r in records} <= {1, 2, 15}
    assert sum(r.status == 1 for r in records) > 400
    assert ZkDevice.generate(30, 600, seed=9, start=datetime(2025, 3, 3)).records == records


def test_device_rejects_ids_its_formats_cannot_hold() -> None:
    with pytest.raises(ValueError):
        ZkDevice(user_format=28).add_user("A-17", "Budi")
    with pytest.raises(ValueError):
        ZkDevice(record_format=16).add_punch("A-17", datetime(2025, 1, 2, 7, 30))
    with pytest.raises(ValueError):
        ZkDevice(record_format=41)
    device = ZkDevice()
    assert device.add_user("A-17", "Budi Santoso").user_id == "A-17"
    assert device.add_punch("A-17", datetime(2025, 1, 2, 7, 30)).uid == 1


# ---------------------------------------------------------------------------- command line


def test_register_adds_sim_zk_command() -> None:
    parser = argparse.ArgumentParser()
    sim_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sim", "zk", "--port", "0", "--record-format", "16", "--password", "5"])
    assert args.func is sim_cli.run_zk
    assert (args.port, args.record_format, args.user_format, args.password) == (0, 16, 72, 5)
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "zk", "--record-format", "12"])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_cli_serves_pyzk_until_signalled(stop_signal: signal.Signals) -> None:
    command = [
        sys.executable, "-m", "ekinerja.drivers.sim.cli", "zk", "--port", "0", "--users", "7",
        "--records", "33", "--record-format", "16", "--user-format", "28", "--password", "99",
        "--serial", "SIMCLI0001", "--seed", "4", "--clock-offset", "600",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(
            r"ZK simulator SIMCLI0001 listening on 127\.0\.0\.1:(\d+) \(tcp\+udp\), 7 users, 33 records\n", line
        )
        assert match, line
        port = int(match.group(1))
        for udp in (False, True):
            conn = ZK("127.0.0.1", port=port, timeout=5, password=99, force_udp=udp, ommit_ping=True).connect()
            assert conn.get_serialnumber() == "SIMCLI0001"
            assert len(conn.get_attendance()) == 33
            assert abs(conn.get_time() - wib_now() - timedelta(seconds=600)) < timedelta(seconds=3)
            conn.disconnect()
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0


# ---------------------------------------------------------------------------- raw protocol edges


def _raw_command(sock: socket.socket, command: int, session_id: int, reply_id: int, payload: bytes = b"") -> zp.Packet:
    sock.sendall(zp.tcp_frame(zp.pack_packet(command, session_id, reply_id, payload)))
    deframer = zp.TcpDeframer()
    while True:
        packets = deframer.feed(sock.recv(4096))
        if packets:
            assert len(packets) == 1
            return zp.unpack_packet(packets[0])


def test_raw_clients_get_error_codes_not_a_crash(sim: ZkSimulator) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert garbage.recv(100) == b""  # dropped
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        early = _raw_command(sock, zp.CMD_GET_TIME, 0, 1)
        assert early.command == zp.CMD_ACK_ERROR_INIT
        hello = _raw_command(sock, zp.CMD_CONNECT, 0, 2)
        assert (hello.command, hello.reply_id) == (zp.CMD_ACK_OK, 2)
        session = hello.session_id
        unknown = _raw_command(sock, 9999, session, 3)
        assert (unknown.command, unknown.session_id, unknown.reply_id) == (zp.CMD_ACK_UNKNOWN, session, 3)
        cleared = _raw_command(sock, zp.CMD_CLEAR_DATA, session, 4)
        assert cleared.command == zp.CMD_ACK_OK
        assert (sim.device.user_count, sim.device.record_count) == (0, 0)
        bad_time = _raw_command(
            sock, zp.CMD_SET_TIME, session, 5, zp.U32.pack(zp.encode_time_parts(2025, 2, 30, 0, 0, 0))
        )
        assert bad_time.command == zp.CMD_ACK_ERROR
        assert _raw_command(sock, zp.CMD_EXIT, session, 6).command == zp.CMD_ACK_OK
        assert sock.recv(100) == b""  # the terminal hangs up after EXIT
    assert connect(sim).get_serialnumber() == "SIMFIXTURE01"
