"""``ekinerja demo``: the whole path on one machine with no hardware and no servers to install.

A store on SQLite, two simulated ZKTeco terminals (one over TCP, one over UDP) that punch every
few seconds, and the gateway polling them and pushing to the store. When this machine's pcscd has
vsmartcard's virtual reader, an RFID reader too, tapped by simulated cards (demo_cards); otherwise
the demo says how to add one. It prints where to look and, every few seconds, how many punches
each part holds.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ekinerja.drivers.sim.cli import port_number

GATEWAY_ID = "opd-demo"
DEFAULT_PORT = 8400


def register(commands: Any) -> None:
    """Add the ``demo`` command."""
    parser = commands.add_parser(
        "demo", help="run a store, two simulated terminals and a gateway on this machine", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="store port (a free one if taken)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the demo's data here (default: temporary)")
    parser.add_argument("--punch-every", type=float, default=3.0, help="seconds between simulated punches")
    parser.set_defaults(func=run)


def _port(wanted: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_store(data: Path, port: int, token: str, reports_token: str) -> tuple[Any, threading.Thread]:
    import uvicorn

    from ekinerja.config.store import ApiClient, GatewayCredential, StoreConfig, StoreSection
    from ekinerja.store.app import create_app
    from ekinerja.store.schema import upgrade

    config = StoreConfig(
        store=StoreSection(database_url=f"sqlite:///{data / 'store.db'}", listen=f"127.0.0.1:{port}"),
        gateways=[GatewayCredential(id=GATEWAY_ID, token=token)],
        clients=[ApiClient(id="demo", token=reports_token, can_write=True)],
    )
    upgrade(config.store.database_url)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="store", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    if not thread.is_alive():
        raise SystemExit(f"the demo store could not listen on 127.0.0.1:{port}")
    return server, thread


def employees_csv(users: list[Any], since: date) -> str:
    """A registry for the simulated terminals' users: made-up but valid NIPs, two units, active
    from the terminals' first punch (earlier days would all be absences), each with a demo card."""
    from ekinerja.demo_cards import card_uid

    lines = ["nip,name,unit,zk_user_id,card_uid,active_from"]
    for n, user in enumerate(users):
        born = date(1975, 1, 1) + timedelta(days=397 * n)
        nip = f"{born:%Y%m%d}{2000 + n % 20}{n % 12 + 1:02d}{1 + n % 2}{n + 1:03d}"
        unit = ("Bagian Umum", "Bidang Aset")[n % 2]
        lines.append(f"{nip},{user.name or 'Pegawai ' + user.user_id},{unit},{user.user_id},{card_uid(n)},{since}")
    return "\n".join(lines) + "\n"


def _register_employees(data: Path, device: Any) -> str:
    """Import the demo registry; returns the first NIP, for the example report."""
    from ekinerja.store.db import make_engine
    from ekinerja.store.registry import import_employees

    engine = make_engine(f"sqlite:///{data / 'store.db'}")
    try:
        since = min((r.timestamp.date() for r in device.records), default=date.today())
        text = employees_csv(device.users, since)
        import_employees(engine, text, "demo registry", "demo", datetime.now(UTC).replace(tzinfo=None))
    finally:
        engine.dispose()
    return text.splitlines()[1].split(",")[0]


def _gateway_config(data: Path, store_url: str, token: str, ports: dict[str, int], cards: bool) -> Any:
    from ekinerja.config.gateway import (
        GatewayConfig,
        GatewaySection,
        PcscDevice,
        StoreClientSection,
        WebSection,
        ZkDevice,
    )
    from ekinerja.demo_cards import READER

    # The TCP terminal is captured live (punches in the store within a second), the UDP one polled.
    devices: list[ZkDevice | PcscDevice] = [
        ZkDevice(
            id=f"pintu-{proto}", kind="zk", host="127.0.0.1", port=port, protocol=proto,
            live=proto == "tcp", poll_interval_s=30 if proto == "tcp" else 2,
        )
        for proto, port in ports.items()
    ]  # fmt: skip
    if cards:  # a short debounce: the demo's few cards come round again within the minute
        devices.append(PcscDevice(id="kartu-pintu", kind="pcsc", reader=READER, debounce_s=5))
    return GatewayConfig(
        gateway=GatewaySection(id=GATEWAY_ID, data_dir=data / "gateway"),
        web=WebSection(listen=f"127.0.0.1:{_port(8401)}"),
        store=StoreClientSection(url=store_url, token=token, push_interval_s=2, cards_refresh_s=10),
        devices=devices,
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo until ``--seconds`` pass or Ctrl-C."""
    keep = args.data_dir is not None
    data = args.data_dir.resolve() if keep else Path(tempfile.mkdtemp(prefix="ekinerja-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with ExitStack() as stack:
        sims = _simulated_terminals(stack, args.punch_every)
        _run_with(data, sims, args, stop)
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
    return 0


def _simulated_terminals(stack: ExitStack, punch_every: float) -> dict[str, Any]:
    from ekinerja.drivers.sim.zk_device import ZkDevice as SimDevice
    from ekinerja.drivers.sim.zk_server import ZkSimulator

    return {
        proto: stack.enter_context(
            ZkSimulator(
                SimDevice.generate(users=25, records=120, serial=f"DEMO{proto.upper()}0001", seed=n),
                protocol=proto,
                punch_every_s=punch_every,
                seed=n,
            )
        )
        for n, proto in enumerate(("tcp", "udp"))
    }


def _run_with(data: Path, sims: dict[str, Any], args: argparse.Namespace, stop: threading.Event) -> None:
    """The store, the gateway and the demo's cards, until ``stop``; then the summary."""
    from ekinerja.demo_cards import DemoCards, card_uid, unavailable_reason
    from ekinerja.gateway.service import GatewayService

    token, reports_token, port = secrets.token_urlsafe(24), secrets.token_urlsafe(18), _port(args.port)
    server, thread = _start_store(data, port, token, reports_token)
    nip = _register_employees(data, sims["tcp"].device)
    store_url = f"http://127.0.0.1:{port}"
    no_cards = unavailable_reason()
    ports = {p: s.port for p, s in sims.items()}
    service = GatewayService(_gateway_config(data, store_url, token, ports, cards=no_cards is None))
    gateway_stop = threading.Event()  # set after the last card tap is over, so its punch is counted
    gateway = threading.Thread(target=service.run, args=(gateway_stop,), name="gateway", daemon=True)
    gateway.start()
    deadline = time.monotonic() + 10
    while service.web is None and gateway.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    _announce(store_url, sims, data, reports_token, nip, no_cards)
    if service.web is not None:
        print(f"  status page:   {service.web.url}/  (English: {service.web.url}/?lang=en; JSON /api/status, /metrics)")
    cards = DemoCards([card_uid(n) for n in range(8)] + ["04FFEE01"], args.punch_every)  # the last: unregistered
    with cards.tapping() if no_cards is None else contextlib.nullcontext(cards):
        _watch(stop, args.seconds, service, sims, store_url, reports_token)
    gateway_stop.set()
    gateway.join(30)
    for sim in sims.values():
        sim.stop_punching()
    service.pull_all()  # a last read and push, so the summary compares complete figures
    service.sync_once()
    card_punches = sum(status.punches for status in service.card_status.values())
    print(
        f"demo stopped: {_on_devices(sims)} punches on the terminals, {card_punches} card punches "
        f"({cards.taps} taps), {_stored(store_url, reports_token)} in the store."
    )
    service.close()
    server.should_exit = True
    thread.join(10)


def _announce(
    store_url: str, sims: dict[str, Any], data: Path, reports_token: str, nip: str, no_cards: str | None
) -> None:
    from ekinerja.demo_cards import HOW_TO_ENABLE, READER

    print("e-Kinerja attendance gateway demo")
    for proto, sim in sims.items():
        how = "live capture" if proto == "tcp" else "polled every 2 s"
        where = f"127.0.0.1:{sim.port} ({proto}, {how})"
        print(f"  terminal pintu-{proto}: simulated ZKTeco {sim.device.serial} on {where}")
    if no_cards is None:
        print(f"  RFID reader kartu-pintu: {READER!r} under pcscd, tapped by 9 simulated cards (one unregistered)")
    else:
        print(f"  RFID reader: not in this demo: {no_cards};")
        print(f"    {HOW_TO_ENABLE}")
    print(f"  store:         {store_url}  (SQLite in {data})")
    print(f"  API (OpenAPI): {store_url}/docs")
    print(f"  health:        {store_url}/healthz")
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date()  # the offices' day (WIB)
    month_start = today.replace(day=1)
    curl = f'curl -H "Authorization: Bearer {reports_token}"'
    print(f'  punch feed:    {curl} "{store_url}/v1/feed?after=0"')
    print("  reports (rule profile perma-3-2020, 25 employees registered):")
    print(f'    {curl} "{store_url}/v1/attendance/daily?nip={nip}&from={month_start}&to={today}"')
    print(f'    {curl} "{store_url}/v1/attendance/monthly?month={today:%Y-%m}&format=csv"')
    print(f'    {curl} "{store_url}/v1/discipline?year={today.year}"')
    print("Punches are added every few seconds; press Ctrl-C to stop.", flush=True)


def _on_devices(sims: dict[str, Any]) -> int:
    return sum(int(sim.device.record_count) for sim in sims.values())


def _stored(url: str, token: str) -> int:
    """How many punches the store's feed holds, page by page (read with the demo's client token)."""
    import httpx

    count, after = 0, 0
    with httpx.Client(base_url=url, timeout=5, headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            page = client.get("/v1/feed", params={"after": after, "limit": 5000}).json()
            count += len(page["items"])
            after = page["next_after"]
            if not page["has_more"]:
                return count


def _watch(
    stop: threading.Event, seconds: float | None, service: Any, sims: dict[str, Any], url: str, token: str
) -> None:
    """Print the three counts every few seconds until ``stop`` or the deadline."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        wait = 5.0 if deadline is None else max(0.0, min(5.0, deadline - time.monotonic()))
        if stop.wait(timeout=wait):
            return
        waiting = service.buffer.backlog().pending
        cards = sum(status.punches for status in service.card_status.values())
        print(
            f"  on terminals {_on_devices(sims):5d} | card punches {cards:4d} | waiting at gateway {waiting:5d} "
            f"| in store {_stored(url, token):5d}"
        )
        if deadline is not None and time.monotonic() >= deadline:
            stop.set()
            return
