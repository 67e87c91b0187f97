"""Download and parse of a 100,000-record terminal: the driver against pyzk's get_attendance().

get_attendance() returns parsed records; the like-for-like figure is the driver's download and
parse into records. The driver's whole pull, which also maps every record to its event (device
time and UTC instant as the buffer stores them), is reported beside it, and so is the cost of
building every full PunchEvent model from that pull, which the gateway only does for the events it
sends (a batch at a time).

Also: a poll when nothing is new, against a full download. Both against the project's ZK
simulator over loopback TCP, in this one process.
Targets (issue 2): driver at least 20x faster than get_attendance(); an idle poll at least 100x cheaper.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from zk import ZK

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zk_records import parse_attendance
from ekinerja.drivers.zkteco import DeviceCursor, ZkDriver, ZkSettings

from harness import report


def timed(step: Callable[[], object]) -> float:
    """Seconds one call of ``step`` takes."""
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def download_and_parse(driver: ZkDriver, records: int) -> None:
    """What get_attendance() does, the driver's way: download, then parse into records."""
    with driver.connect() as conn:
        driver.read_info(conn)
        body, count = driver.download_log(conn)
    parsed, bad = parse_attendance(body, count)
    assert len(parsed) == records and not bad


def pyzk_get_attendance(port: int, records: int) -> None:
    """The baseline: pyzk's own download and parse."""
    conn = ZK("127.0.0.1", port=port, timeout=120, ommit_ping=True).connect()
    assert len(conn.get_attendance()) == records
    conn.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    # Room left on the terminal: a full log is downloaded at every poll (it may overwrite its
    # oldest records without its count moving), so only a log with room has a cheap idle poll.
    device = ZkDevice.generate(users=500, records=args.records, record_format=40, rec_cap=2 * args.records, seed=7)
    with ZkSimulator(device, protocol="tcp") as sim:
        driver = ZkDriver(ZkSettings(gateway_id="opd-bench", device_id="pintu", host="127.0.0.1", port=sim.port))
        parse_s = timed(lambda: download_and_parse(driver, args.records))
        first = driver.pull(DeviceCursor())  # warm-up; the timed pull follows
        pull_s = timed(lambda: driver.pull(DeviceCursor()))
        assert len(first.events) == args.records
        models_s = timed(lambda: list(first.events))
        poll_s = statistics.median(timed(lambda: driver.pull(first.cursor)) for _ in range(args.polls))
        pyzk_s = timed(lambda: pyzk_get_attendance(sim.port, args.records))
    report(
        "zk_download",
        records=args.records,
        pyzk_get_attendance_s=round(pyzk_s, 3),
        driver_download_and_parse_s=round(parse_s, 3),
        download_and_parse_speedup=round(pyzk_s / parse_s, 1),
        driver_pull_s=round(pull_s, 3),
        driver_pull_speedup=round(pyzk_s / pull_s, 1),
        all_punch_event_models_from_the_pull_s=round(models_s, 3),
        speedup_target=20,
        download_and_parse_met=pyzk_s / parse_s >= 20,
        driver_pull_met=pyzk_s / pull_s >= 20,
        idle_poll_median_s=round(poll_s, 4),
        idle_poll_cheaper_than_full_pull_by=round(pull_s / poll_s, 1),
        idle_poll_target=100,
        idle_poll_met=pull_s / poll_s >= 100,
    )


if __name__ == "__main__":
    main()
