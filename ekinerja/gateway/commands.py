"""Commands the IT team sends the gateway (over MQTT): sync-now, pull, set-time, status.

A command is a name and an optional JSON object; the answer is a JSON object with ``ok`` and
either the result or an ``error`` that says what was wrong. A bad command never raises out of
:func:`handle`: the transport answers it and goes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ekinerja.gateway.service import GatewayService

log = logging.getLogger("ekinerja.gateway.commands")

MAX_PAYLOAD = 4096
SET_TIME_WAIT_S = 30.0  # a live terminal's clock is set in its next session, which starts at once


class CommandError(Exception):
    """A command that cannot be carried out as sent; the message is the answer's ``error``."""


def _arguments(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload of {len(payload)} bytes is too large (at most {MAX_PAYLOAD})")
    if not payload.strip():
        return {}
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise CommandError('payload is not JSON; send an object such as {"device": "pintu-utama"} or nothing') from None
    if not isinstance(data, dict):
        raise CommandError('payload must be a JSON object, e.g. {"device": "pintu-utama"}')
    return data


def _device(service: GatewayService, args: dict[str, Any], *, required: bool) -> str | None:
    device = args.get("device")
    if device is None and not required:
        return None
    if not isinstance(device, str) or not device:
        raise CommandError('name the device: {"device": "<id>"}')
    if device not in service.devices:
        raise CommandError(f"no device {device!r} at this gateway (devices: {', '.join(service.devices) or 'none'})")
    return device


def sync_now(service: GatewayService, args: dict[str, Any]) -> dict[str, Any]:
    """Push the buffer to the store now."""
    report = service.push_now()
    if report is None:
        return {"pushed": 0}
    if report.error:
        raise CommandError(f"push failed: {report.error}")
    return {"accepted": report.accepted, "duplicate": report.duplicate, "rejected": report.rejected}


def pull(service: GatewayService, args: dict[str, Any]) -> dict[str, Any]:
    """Read one terminal's log now, or every terminal's."""
    device = _device(service, args, required=False)
    wanted = [device] if device else list(service.drivers)
    if device and device not in service.drivers:
        raise CommandError(f"{device!r} is a card reader: its taps arrive as they happen, there is no log to pull")
    done: dict[str, Any] = {}
    for device_id in wanted:
        capture = service.captures.get(device_id)
        if capture is not None:  # its live session reads the log as it starts again
            capture.renew()
            done[device_id] = {"renewed": True}
            continue
        result = service.pull_device(device_id, force=True)
        status = service.status[device_id]
        done[device_id] = {"new": status.last_new} if result is not None else {"error": status.last_error}
    return {"devices": done}


def set_time(service: GatewayService, args: dict[str, Any]) -> dict[str, Any]:
    """Set one terminal's clock to the gateway's, within its own next read (a poll now, or a renewed
    live session), so no second connection competes with the one the gateway keeps; answers the skew
    it had and has now, and whether the buffer recorded the setting."""
    device = _device(service, args, required=True)
    assert device is not None
    keeper = service.keepers.get(device)
    if keeper is None:
        raise CommandError(f"{device!r} is a card reader: its punches carry the gateway's clock already")
    before = keeper.status.last_clock_set
    keeper.clock_set_wanted.set()
    capture = service.captures.get(device)
    if capture is not None:
        capture.renew()
        deadline = time.monotonic() + SET_TIME_WAIT_S
        while keeper.status.last_clock_set is before and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        service.pull_device(device, force=True)
    done = keeper.status.last_clock_set
    if done is before or done is None:
        keeper.clock_set_wanted.clear()
        raise CommandError(f"{device}: the clock was not set: {keeper.status.last_error or 'no read in time'}")
    info = keeper.status.info
    after = info.clock_skew_s if info else None
    answer = {
        "device": device,
        "skew_before_s": round(done[1], 1),
        "skew_after_s": None if after is None else round(after, 1),
        "recorded": keeper.status.clock_set_unrecorded is None,
    }
    if keeper.status.clock_set_unrecorded is not None:
        answer["warning"] = (
            "the clock was set, but the buffer could not record it (its list of clock settings lacks this one): "
            f"{keeper.status.clock_set_unrecorded}"
        )
    return answer


def status(service: GatewayService, args: dict[str, Any]) -> dict[str, Any]:
    """The gateway's whole status snapshot."""
    return service.snapshot().as_json()


COMMANDS: dict[str, Callable[[GatewayService, dict[str, Any]], dict[str, Any]]] = {
    "sync-now": sync_now,
    "pull": pull,
    "set-time": set_time,
    "status": status,
}


def handle(service: GatewayService, name: str, payload: bytes) -> dict[str, Any]:
    """Carry out a command; the answer, never an exception."""
    command = COMMANDS.get(name)
    if command is None:
        return {"ok": False, "error": f"unknown command {name!r}; known: {', '.join(COMMANDS)}"}
    try:
        return {"ok": True, **command(service, _arguments(payload))}
    except CommandError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a command must never take the gateway down
        log.exception("command %s failed", name)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
