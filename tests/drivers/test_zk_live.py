"""Live capture against the simulator over real TCP and UDP: events, catch-up, and every way a stream fails."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zk_live import LiveEvent, ZkLiveCapture, parse_live_event
from ekinerja.drivers.zkteco import DeviceCursor, DeviceSession, DeviceUnavailable, PullResult, ZkDriver
from ekinerja.sync.contract import DeviceRead, PunchEvent

from stack import logged, punch_set, wait_for, zk_settings


class Sink:
    """Collects what a capture delivers, as the gateway's keeper would store it."""

    def __init__(self) -> None:
        self.cursor_value = DeviceCursor()
        self.pulled_events: list[PunchEvent] = []
        self.live_events: list[PunchEvent] = []
        self.unreadable_reasons: list[str] = []
        self.errors: list[str] = []
        self.sessions = 0
        self.lock = threading.Lock()

    def cursor(self) -> DeviceCursor:
        return self.cursor_value

    def pulled(self, result: PullResult, session: DeviceSession) -> None:
        with self.lock:
            self.pulled_events += list(result.events)
            self.cursor_value = result.cursor
            self.sessions += 1

    def punched(self, read: DeviceRead) -> None:
        with self.lock:
            self.live_events += list(read)

    def unreadable(self, reason: str) -> None:
        with self.lock:
            self.unreadable_reasons.append(reason)

    def failed(self, error: DeviceUnavailable) -> None:
        with self.lock:
            self.errors.append(str(error))

    def all_events(self) -> dict[str, PunchEvent]:
        with self.lock:
            return {e.event_id: e for e in [*self.pulled_events, *self.live_events]}


@contextmanager
def capturing(driver: ZkDriver, renew_s: float = 30) -> Iterator[tuple[Sink, ZkLiveCapture]]:
    sink = Sink()
    capture = ZkLiveCapture(driver, sink, renew_s)
    stop = threading.Event()
    thread = threading.Thread(target=capture.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield sink, capture
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the capture did not stop"


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.parametrize(("record_format", "user_format"), [(8, 28), (16, 28), (40, 72)])
def test_punches_arrive_live_and_match_the_log(protocol: str, record_format: int, user_format: int) -> None:
    device = ZkDevice.generate(users=6, records=20, record_format=record_format, user_format=user_format, seed=1)
    with ZkSimulator(device, password=777) as sim:
        driver = ZkDriver(zk_settings(sim.port, protocol, password=777))
        with capturing(driver) as (sink, capture):
            wait_for(lambda: capture.sessions == 1 and device.listener_count == 1, what="the live session")
            assert len(sink.pulled_events) == 20, "the session starts by reading the log"
            added = [device.add_punch(f"{1001 + i}", punch=i % 2) for i in range(5)]
            wait_for(lambda: len(sink.live_events) == 5, what="five live punches")
        # The same punches read from the log are the same events: one event, whatever the path.
        logged = driver.pull(DeviceCursor()).events
    assert punch_set(sink.live_events) == {(r.user_id, r.timestamp, r.punch) for r in added}
    assert {e.event_id for e in sink.live_events} <= {e.event_id for e in logged}
    assert sink.errors == [] and sink.unreadable_reasons == []
    first = sink.live_events[0]
    assert first.device_serial == device.serial and first.clock_skew_s is not None


def test_a_session_is_renewed_and_catches_up_with_what_the_stream_missed() -> None:
    device = ZkDevice.generate(users=3, records=4, seed=2)
    with (
        ZkSimulator(device) as sim,
        capturing(ZkDriver(zk_settings(sim.port)), renew_s=0.6) as (sink, capture),
    ):
        wait_for(lambda: capture.sessions == 1 and device.listener_count == 1)
        # A punch the stream never sent (as between two sessions) reaches the log only.
        missed = device.make_record("1002", device.now())
        device.extend_records([missed])
        wait_for(lambda: capture.sessions >= 3, what="two renewals")
    assert (missed.user_id, missed.timestamp, missed.punch) in punch_set(sink.pulled_events)
    assert punch_set(sink.all_events().values()) == logged(device)


def test_a_number_that_may_be_a_uid_is_left_to_the_log() -> None:
    # 8-byte records and text user ids: the terminal puts the internal uid in the live event.
    device = ZkDevice(record_format=8, user_format=72, serial="UIDS000001")
    device.add_user("1001", "Agus", uid=1)
    device.add_user("A-12", "Budi", uid=5)  # its event says 5: nobody's user id
    device.add_user("7", "Dewi", uid=3)
    device.add_user("B-7", "Eko", uid=7)  # its event says 7: user id "7" or uid 7?
    with ZkSimulator(device) as sim, capturing(ZkDriver(zk_settings(sim.port))) as (sink, capture):
        wait_for(lambda: capture.sessions == 1 and device.listener_count == 1)
        device.add_punch("1001", datetime(2026, 3, 2, 7, 0))
        wait_for(lambda: len(sink.live_events) == 1, what="the live punch of an unambiguous number")
        for n, user in enumerate(("A-12", "B-7"), start=2):
            device.add_punch(user, datetime(2026, 3, 2, 7, n))
            wait_for(lambda n=n: capture.sessions == n and device.listener_count == 1, what="a session")  # type: ignore[misc]
        # Uid 5 is given to someone else while a session runs: the live path never trusted it.
        device.add_user("C-99", "Fitri", uid=5)
        device.add_punch("C-99", datetime(2026, 3, 2, 7, 9))
        wait_for(lambda: len(sink.pulled_events) == 4, what="the punch read from the log")
    assert [e.subject.zk_user_id for e in sink.live_events] == ["1001"]
    assert len(sink.unreadable_reasons) == 3 and "unknown or ambiguous" in sink.unreadable_reasons[0]
    assert punch_set(sink.all_events().values()) == logged(device)
    assert ("C-99", datetime(2026, 3, 2, 7, 9), 0) in punch_set(sink.pulled_events)


def test_a_terminal_whose_events_cannot_be_read_is_polled_instead() -> None:
    device = ZkDevice.generate(users=3, records=0, seed=5)
    with (
        ZkSimulator(device) as sim,
        capturing(ZkDriver(zk_settings(sim.port)), renew_s=0.5) as (sink, capture),
    ):
        sim.live_event_size = 14
        for i in range(4):
            wait_for(lambda: device.listener_count == 1 or capture.polling_only, what="a session")
            device.add_punch(f"{1001 + i % 3}", datetime(2026, 3, 2, 7, i))
            wait_for(lambda i=i: len(sink.pulled_events) == i + 1, what="the punch read from the log")  # type: ignore[misc]
        assert capture.polling_only and len(sink.unreadable_reasons) == 3
        assert "read by polling only" in sink.unreadable_reasons[-1]
    assert punch_set(sink.all_events().values()) == logged(device) and sink.live_events == []


# --- parsing of event payloads ------------------------------------------------------------------

_STAMP = bytes((26, 3, 2, 7, 31, 5))
DAY = datetime(2026, 3, 2).date()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (struct.pack("<IBB6s", 1001, 1, 0, _STAMP), LiveEvent("1001", 1, 0, DAY, 27065, by_number=True)),
        (
            struct.pack("<24sBB6s", b"NIP-77", 15, 1, _STAMP),
            LiveEvent("NIP-77", 15, 1, DAY, 27065),
        ),
        (struct.pack("<24sBB6s4x", b"42", 2, 0, _STAMP), LiveEvent("42", 2, 0, DAY, 27065)),
        (struct.pack("<24sBB6s20x", b"42", 2, 4, _STAMP), LiveEvent("42", 2, 4, DAY, 27065)),
        (struct.pack("<IBB6s2x", 1001, 1, 0, _STAMP), "unknown live event size: 14 bytes"),
        (b"", "unknown live event size: 0 bytes"),
        (struct.pack("<IBB6s", 1001, 1, 0, bytes((26, 2, 31, 7, 0, 0))), "impossible date"),
        (struct.pack("<24sBB6s", b"\xff\xfe", 1, 0, _STAMP), "unreadable user id"),
        (struct.pack("<24sBB6s", b"", 1, 0, _STAMP), "unreadable user id"),
    ],
)
def test_live_event_payloads(payload: bytes, expected: LiveEvent | str) -> None:
    parsed = parse_live_event(payload)
    if isinstance(expected, str):
        assert isinstance(parsed, str) and expected in parsed
    else:
        assert parsed == expected
