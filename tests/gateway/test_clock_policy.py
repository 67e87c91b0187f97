"""The ``correct`` clock policy: when the gateway sets a terminal's clock, and that it does."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.clock_policy import should_set_clock
from ekinerja.gateway.service import GatewayService

from stack import write_gateway_toml

NOW = datetime(2026, 3, 2, 10, 0)
QUIET = timedelta(minutes=10)


@pytest.mark.parametrize(
    ("policy", "skew", "last_punch", "expected"),
    [
        ("alert", 600.0, None, False),  # alert only reports
        ("correct", 119.9, None, False),  # under the threshold
        ("correct", 120.0, None, True),
        ("correct", -300.0, NOW - timedelta(hours=1), True),  # behind counts as much as ahead
        ("correct", 600.0, NOW - timedelta(minutes=9, seconds=59), False),  # someone punched just now
        ("correct", 600.0, NOW - QUIET, True),
    ],
)
def test_when_the_clock_is_set(policy: str, skew: float, last_punch: datetime | None, expected: bool) -> None:
    decided = should_set_clock(
        policy=policy, skew_s=skew, threshold_s=120, device_time=NOW, last_punch=last_punch, quiet=QUIET
    )
    assert decided is expected


def service_for(tmp_path: Path, port: int, policy: str) -> GatewayService:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_gateway_toml(tmp_path, "http://127.0.0.1:9", "token-0123456789", {"pintu": (port, "tcp")})
    path.write_text(path.read_text() + f'clock_policy = "{policy}"\nclock_threshold_s = 60\nquiet_minutes = 10\n')
    return GatewayService(load_model(path, GatewayConfig))


def test_a_drifted_clock_is_set_at_a_quiet_moment_and_recorded(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=3, records=20, seed=4, clock_offset_s=900)  # punches end yesterday
    with ZkSimulator(device) as sim:
        service = service_for(tmp_path, sim.port, "correct")
        first = service.pull_device("pintu")
        assert first is not None and 895 <= first.info.clock_skew_s <= 905
        assert abs(device.clock_offset_s) < 5, "the terminal's clock was not set"
        again = service.pull_device("pintu")
        assert again is not None and abs(again.info.clock_skew_s) < 5
        (setting,) = service.buffer.clock_settings()
        assert setting[:2] == ("pintu", device.serial) and 895 <= setting[2] <= 905
        assert service.status["pintu"].last_clock_set is not None
        service.close()


def test_a_recent_punch_or_the_alert_policy_leaves_the_clock_alone(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=3, records=5, seed=5, clock_offset_s=900)
    device.add_punch("1001", device.now() - timedelta(minutes=2))
    with ZkSimulator(device) as sim:
        busy = service_for(tmp_path / "busy", sim.port, "correct")
        assert busy.pull_device("pintu") is not None and busy.buffer.clock_settings() == []
        busy.close()
        alert = service_for(tmp_path / "alert", sim.port, "alert")
        assert alert.pull_device("pintu") is not None and alert.buffer.clock_settings() == []
        alert.close()
    assert 895 <= device.clock_offset_s <= 905
