"""``ekinerja gateway ...``: run the office service, or do one of its steps by hand."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model

EXIT_OK, EXIT_FAILED = 0, 1


def register(commands: Any) -> None:
    """Add the ``gateway`` command and its subcommands."""
    parser = commands.add_parser("gateway", help="the office gateway")
    sub = parser.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    steps = {
        "run": (_run, "run the gateway service until stopped"),
        "check-config": (_check_config, "validate gateway.toml and print what it configures"),
        "devices": (_devices, "contact every device and print what it reports"),
        "pull": (_pull, "read every device once into the buffer"),
        "sync": (_sync, "push the buffer to the store once"),
        "backlog": (_backlog, "print what waits in the buffer"),
        "recover": (_recover, "rebuild a damaged buffer from what can be read; the damaged file is kept aside"),
        "backup": (_backup, "copy the buffer to a new file, consistently, while the gateway runs"),
        "restore": (_restore, "put a backup in the place of the buffer (the gateway stopped)"),
    }
    for name, (handler, text) in steps.items():
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", required=True, type=Path, help="path to gateway.toml")
        if name in ("backlog", "devices", "pull", "sync"):
            cmd.add_argument("--json", action="store_true", help="print JSON instead of text")
        if name == "devices":
            cmd.add_argument(
                "--users",
                action="store_true",
                help="print the enrolled users of every terminal as CSV in the registry's import format",
            )
        if name in ("backup", "restore"):
            cmd.add_argument("file", type=Path, help="the backup file" + (" to write" if name == "backup" else ""))
        if name == "backlog":
            cmd.add_argument(
                "--requeue-rejected",
                action="store_true",
                help="send events the store rejected again (after fixing the cause, e.g. a device clock)",
            )
        cmd.set_defaults(func=handler)


def _load(args: argparse.Namespace) -> GatewayConfig:
    return load_model(args.config, GatewayConfig)


def _service(args: argparse.Namespace) -> Any:
    from ekinerja.gateway.service import GatewayService

    config = _load(args)
    with _naming_config(args):
        return GatewayService(config)


@contextmanager
def _naming_config(args: argparse.Namespace) -> Iterator[None]:
    """A damaged buffer's advice names the gateway.toml given on this command line."""
    from ekinerja.gateway.buffer_open import BufferDamaged

    try:
        yield
    except BufferDamaged as exc:
        exc.config = args.config
        raise


def _print(args: argparse.Namespace, data: dict[str, Any], text: list[str]) -> None:
    print(json.dumps(data, default=str, indent=2) if args.json else "\n".join(text))


def _check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{args.config}: OK")
    print(f"  gateway {config.gateway.id}, zone {config.gateway.timezone}, data in {config.gateway.data_dir}")
    store = config.store
    print(f"  store {store.shown_url()}, push every {store.push_interval_s:g} s, batches of {store.batch_size}")
    for d in config.terminals:
        print(f"  device {d.id}: {d.kind} {d.protocol}://{d.host}:{d.port}, poll every {d.poll_interval_s:g} s")
    for r in config.card_readers:
        print(f"  device {r.id}: pcsc card reader(s) matching {r.reader!r}, debounce {r.debounce_s:g} s")
    if config.card_readers:
        from ekinerja.gateway.service import missing_pyscard

        missing = missing_pyscard()
        if missing:
            print(f"  warning: {missing}")
    if not config.devices:
        print("  no devices configured: add [[devices]] entries")
    web = config.web
    print(f"  status page on http://{web.listen}/ ({'basic auth' if web.username else 'no auth'})")
    if web.username is None and not web.listen.startswith(("127.", "localhost:", "[::1]:")):
        print("  warning: the status page listens beyond this machine without auth: set [web] username and password")
    mqtt = config.mqtt
    if mqtt is not None:
        topics = mqtt.topic_base(config.gateway.id)
        print(f"  MQTT to {mqtt.host}:{mqtt.port}{' over TLS' if mqtt.tls else ''}, topics under {topics}/")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    service = _service(args)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        service.run(stop)
    finally:
        service.close()
    return EXIT_OK


def _devices(args: argparse.Namespace) -> int:
    from ekinerja.drivers.zkteco import DeviceUnavailable

    if args.users:
        return _device_users(args)
    service = _service(args)
    data: dict[str, Any] = {}
    lines, failed = [], False
    try:
        for device_id, driver in service.drivers.items():
            try:
                with driver.connect() as conn:
                    info = driver.read_info(conn)
            except DeviceUnavailable as exc:
                failed = True
                data[device_id] = {"online": False, "error": str(exc)}
                lines.append(f"{device_id}: OFFLINE: {exc}")
                continue
            data[device_id] = {"online": True, **info.__dict__}
            lines.append(
                f"{device_id}: serial {info.serial}, firmware {info.firmware}, {info.users} users, "
                f"{info.records}/{info.records_capacity} records ({_percent(info.records, info.records_capacity)}), "
                f"clock skew {info.clock_skew_s:+.0f} s"
            )
        failed |= _card_readers(service, data, lines)
    finally:
        service.close()
    _print(args, data, lines)
    return EXIT_FAILED if failed else EXIT_OK


def _card_readers(service: Any, data: dict[str, Any], lines: list[str]) -> bool:
    """The readers each card-reader entry would watch now; True when one has none."""
    if not service.config.card_readers:
        return False
    service.require_pyscard()
    from ekinerja.drivers.card_reader import matching_readers
    from ekinerja.drivers.pcsc import PcscUnavailable, present_readers

    try:
        present = present_readers()
    except PcscUnavailable as exc:
        present, problem = [], str(exc)
    else:
        problem = f"no reader matches (readers present: {', '.join(present) or 'none'})"
    failed = False
    for device in service.config.card_readers:
        found = matching_readers(present, device.reader)
        data[device.id] = {"online": bool(found), "readers": found, "error": None if found else problem}
        lines.append(f"{device.id}: card reader(s) {', '.join(found)}" if found else f"{device.id}: OFFLINE: {problem}")
        failed |= not found
    return failed


def _percent(records: int, capacity: int) -> str:
    from ekinerja.gateway.log_policy import percent_used

    used = percent_used(records, capacity)
    return "capacity unknown" if used is None else f"{used:g}% full"


def _device_users(args: argparse.Namespace) -> int:
    from ekinerja.drivers.zkteco import DeviceUnavailable
    from ekinerja.gateway.device_users import users_csv

    service = _service(args)
    found, failed = {}, False
    try:
        for device_id, driver in service.drivers.items():
            try:
                found[device_id] = driver.read_users()
            except DeviceUnavailable as exc:
                failed = True
                print(f"{device_id}: OFFLINE, its users are not listed: {exc}", file=sys.stderr)
    finally:
        service.close()
    if args.json:
        print(json.dumps({d: [asdict(u) for u in users] for d, users in found.items()}, indent=2))
    else:
        sys.stdout.write(users_csv(found))
    return EXIT_FAILED if failed else EXIT_OK


def _pull(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        results = service.pull_all()
        data, lines = {}, []
        for device_id, result in results.items():
            status = service.status[device_id]
            if result is None:
                data[device_id] = {"ok": False, "error": status.last_error}
                lines.append(f"{device_id}: FAILED: {status.last_error}")
                continue
            data[device_id] = {
                "ok": True,
                "read": len(result.events),
                "new": status.last_new,
                "quarantined": len(result.quarantined),
                "records_on_device": result.info.records,
            }
            lines.append(
                f"{device_id}: {len(result.events)} record(s) read, {status.last_new} new, "
                f"{len(result.quarantined)} quarantined ({result.info.records} on the device)"
            )
    finally:
        service.close()
    _print(args, data, lines)
    return EXIT_OK if all(r is not None for r in results.values()) else EXIT_FAILED


def _sync(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        report = service.sync_once()
    finally:
        service.close()
    data = report.__dict__
    total = report.accepted + report.duplicate + report.rejected
    line = (
        f"pushed {total} event(s) in {report.batches} batch(es) ({report.accepted} accepted, "
        f"{report.duplicate} duplicate, {report.rejected} rejected) in {report.seconds:.2f} s"
    )
    _print(args, data, [line] + ([f"stopped: {report.error}"] if report.error else []))
    return EXIT_FAILED if report.error else EXIT_OK


def _backlog(args: argparse.Namespace) -> int:
    from ekinerja.gateway.buffer import Buffer
    from ekinerja.gateway.service import BUFFER_FILE

    config = _load(args)
    with _naming_config(args):
        buffer = Buffer(config.gateway.data_dir / BUFFER_FILE)
    try:
        requeued = buffer.requeue_rejected() if args.requeue_rejected else None
        backlog, rejected = buffer.backlog(), buffer.rejected()
    finally:
        buffer.close()
    oldest = backlog.oldest_pending_captured_at
    lines = [f"requeued {requeued} rejected event(s)"] if requeued is not None else []
    lines += [
        f"pending: {backlog.pending}" + (f" (oldest read at {oldest:%Y-%m-%d %H:%M:%S} UTC)" if oldest else ""),
        *[f"  {device}: {count}" for device, count in sorted(backlog.pending_by_device.items())],
        f"acknowledged by the store: {backlog.acked}",
        f"rejected by the store: {backlog.rejected}",
        *[f"  {r.device_id} {r.event_id[:12]}: {r.reason}" for r in rejected],
        f"quarantined records: {backlog.quarantined}",
    ]
    data = {**backlog.__dict__, "requeued": requeued, "recent_rejections": [r.__dict__ for r in rejected]}
    _print(args, data, lines)
    return EXIT_OK


def _recover(args: argparse.Namespace) -> int:
    from ekinerja.gateway.buffer_recover import recover
    from ekinerja.gateway.service import BUFFER_FILE

    print("\n".join(recover(_load(args).gateway.data_dir / BUFFER_FILE)))
    return EXIT_OK


BUFFER_TABLES = ("events", "reads", "cursors")


def _backup(args: argparse.Namespace) -> int:
    from ekinerja.gateway.service import BUFFER_FILE
    from ekinerja.sqlite_files import backup

    source = _load(args).gateway.data_dir / BUFFER_FILE
    size = backup(source, args.file, "the punch buffer")
    print(f"backed up the punch buffer {source} to {args.file} ({size:,} bytes)")
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from ekinerja.gateway.service import BUFFER_FILE
    from ekinerja.sqlite_files import restore

    target = _load(args).gateway.data_dir / BUFFER_FILE
    kept = restore(args.file, target, "the punch buffer", BUFFER_TABLES)
    print(f"restored the punch buffer {target} from {args.file}")
    if kept is not None:
        print(f"the buffer it replaced is kept, unchanged, in {kept}")
    print(
        "each terminal is read again from where the backup left it: punches made since come back from the "
        "terminals, and the store ignores those it has. Card taps made since the backup that had not reached "
        "the store are only in the replaced buffer. Start the gateway"
    )
    return EXIT_OK
