"""Property: for random schedules of punches and terminal faults, the store's feed holds every
punch ever made on the terminals, each exactly once.

Two simulated terminals (one captured live over TCP, one polled over UDP with 16-byte records,
whose log is large enough to be read in chunks, so a dropped transfer bites) feed a running
gateway, which pushes to a store on SQLite and clears the live terminal's log once it is 80% full
and every punch on it is in the store. Hypothesis draws the schedule; the examples are derandomized
so that CI runs the same ones every time.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import DeviceDisabled, ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from stack import device_punches, feed_punches, read_whole_feed, running, store_server, wait_for, write_gateway_toml

TOKEN = "property-token-01"
START = datetime(2026, 5, 4, 7, 0)

device_index = st.integers(0, 1)
step = st.one_of(
    st.tuples(st.just("punch"), device_index, st.integers(1001, 1006), st.integers(0, 1)),
    st.tuples(st.just("restart"), device_index, st.floats(0.05, 0.6)),
    st.tuples(st.just("drop"), device_index),
    st.tuples(st.just("silent"), device_index, st.floats(0.1, 1.5)),
    st.tuples(st.just("jump"), device_index, st.integers(-7200, 7200)),
    st.tuples(st.just("bad_date"), device_index),
    st.tuples(st.just("slow"), device_index, st.floats(0.05, 0.4)),
    st.tuples(st.just("sleep"), st.floats(0, 0.8)),
)
# The live terminal starts 89% full: its log is cleared as soon as the store has every punch on
# it. The polled one stays under 80%, and its 24 KB log keeps being read in chunks.
LIVE_CAPACITY, POLLED_CAPACITY = 45, 1900


def apply(step: tuple[object, ...], sims: list[ZkSimulator], when: datetime) -> None:
    kind, *args = step
    sim = sims[int(args[0])] if kind != "sleep" else None
    if kind == "punch":
        # A distinct time per punch: two identical records would rightly be one event.
        assert sim is not None
        punch_when_enabled(sim.device, str(args[1]), when, int(args[2]))  # type: ignore[call-overload]
    elif kind == "restart":
        sim.restart(down_s=float(args[1]))  # type: ignore[union-attr, arg-type]
    elif kind == "drop":
        sim.drop_transfers(1)  # type: ignore[union-attr]
    elif kind == "silent":
        sim.set_silent(True)  # type: ignore[union-attr]
        time.sleep(float(args[1]))  # type: ignore[arg-type]
        sim.set_silent(False)  # type: ignore[union-attr]
    elif kind == "jump":
        sim.device.jump_clock(int(args[1]))  # type: ignore[union-attr, call-overload]
    elif kind == "bad_date":
        sim.device.add_bad_date_record("1001", 2026, 2, 30)  # type: ignore[union-attr]
    elif kind == "slow":
        sim.delay_s = float(args[1])  # type: ignore[union-attr, arg-type]
    else:
        time.sleep(float(args[0]))  # type: ignore[arg-type]


def punch_when_enabled(device: ZkDevice, user: str, when: datetime, punch: int) -> None:
    """A person punches; while the gateway has the terminal disabled for a clear, they try again."""
    deadline = time.monotonic() + 10
    while True:
        try:
            device.add_punch(user, when, punch=punch)
            return
        except DeviceDisabled:
            assert time.monotonic() < deadline, "the terminal stayed disabled"
            time.sleep(0.01)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=st.lists(step, min_size=3, max_size=14))
def test_feed_equals_the_logs_whatever_the_faults(
    schedule: list[tuple[object, ...]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("property")
    live = ZkDevice.generate(users=6, records=40, rec_cap=LIVE_CAPACITY, serial="PROPLIVE01", seed=1)
    polled = ZkDevice.generate(
        users=6, records=1500, record_format=16, user_format=28, rec_cap=POLLED_CAPACITY, serial="PROPPOLL01", seed=2
    )
    made = device_punches(live, polled)
    with (
        ZkSimulator(live, protocol="tcp") as a,
        ZkSimulator(polled, protocol="udp") as b,
        store_server(f"sqlite:///{folder}/store.db", {"opd-1": TOKEN}) as url,
    ):
        path = write_gateway_toml(
            folder, url, TOKEN, {"live": (a.port, "tcp"), "polled": (b.port, "udp")}, poll_interval_s=1,
            device_extra={
                "live": "live = true\nmax_backoff_s = 1\nclear_log_at_percent = 80",
                "polled": "max_backoff_s = 1\ntimeout_s = 1\nclear_log_at_percent = 80",
            },
        )  # fmt: skip
        for device in (live, polled):  # every punch made from now on, whether or not a clear removes it later
            device.subscribe(lambda r, serial=device.serial: made.update([(serial, r.user_id, r.timestamp, r.punch)]))
        with running(GatewayService(load_model(path, GatewayConfig))) as service:
            for i, item in enumerate(schedule):
                apply(item, [a, b], START + timedelta(minutes=i))
            a.delay_s = b.delay_s = 0
            expected = made.copy()
            wait_for(lambda: feed_punches(read_whole_feed(url)) == expected, timeout_s=60, what="the feed to match")
            bad_dates = sum(1 for item in schedule if item[0] == "bad_date")
            wait_for(lambda: len(service.buffer.quarantined()) == bad_dates, what="each bad record quarantined")
            wait_for(lambda: service.buffer.log_clears() != [], what="the live terminal's log cleared")
        feed = read_whole_feed(url)
    assert feed_punches(feed) == expected and len(feed) == sum(expected.values())
