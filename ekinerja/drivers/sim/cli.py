"""``ekinerja sim ...``: run device simulators from the command line.

``ekinerja sim zk`` serves a simulated ZKTeco terminal until SIGINT or SIGTERM; ``ekinerja sim
card`` taps a virtual contactless card on vsmartcard's virtual reader (vpcd, inside pcscd). The
module also runs on its own (``python -m ekinerja.drivers.sim.cli zk --port 4370``), without the rest of the
``ekinerja`` command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from ekinerja.drivers.sim.vpcd_card import DEFAULT_HOST, DEFAULT_PORT, Tap, VirtualCard
from ekinerja.drivers.sim.zk_device import RECORD_FORMATS, USER_FORMATS, ZkDevice
from ekinerja.drivers.sim.zk_server import PROTOCOLS, ZkSimulator
from ekinerja.errors import OperatorError

UID_LENGTHS = (4, 7, 10)  # single, double and triple size ISO 14443-A UIDs


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim`` command and its simulator subcommands to a command parser."""
    sim = commands.add_parser("sim", help="run a device simulator", description="Run a device simulator.")
    simulators = sim.add_subparsers(dest="simulator", required=True, metavar="SIMULATOR")
    _add_zk(simulators)
    _add_card(simulators)


def _add_zk(simulators: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    zk = simulators.add_parser(
        "zk",
        help="simulated ZKTeco attendance terminal (pyzk-compatible)",
        description="Serve a simulated ZKTeco terminal over TCP and/or UDP until SIGINT/SIGTERM.",
    )
    zk.add_argument("--port", type=port_number, default=4370, help="port for TCP and UDP (0: any free port)")
    zk.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    zk.add_argument("--protocol", choices=PROTOCOLS, default="both")
    zk.add_argument("--users", type=_non_negative, default=20, help="generated users (ids from 1001)")
    zk.add_argument("--records", type=_non_negative, default=200, help="generated attendance records")
    zk.add_argument("--record-format", type=int, choices=RECORD_FORMATS, default=40, help="bytes per record")
    zk.add_argument("--user-format", type=int, choices=USER_FORMATS, default=72, help="bytes per user")
    zk.add_argument("--password", type=_non_negative, default=0, help="comm key (0: none)")
    zk.add_argument("--clock-offset", type=float, default=0.0, help="device clock minus host clock, seconds")
    zk.add_argument("--punch-every", type=_positive_float, default=None, help="add a random punch every S s")
    zk.add_argument(
        "--capacity", type=_positive, default=100000, metavar="N", help="attendance records the terminal holds"
    )
    zk.add_argument(
        "--delay", type=_non_negative_float, default=0.0, metavar="S", help="seconds before every reply (slow link)"
    )
    zk.add_argument("--serial", default="SIM0000000001", help="serial number the terminal reports")
    zk.add_argument("--seed", type=int, default=None, help="random seed for generated data")
    zk.set_defaults(func=run_zk)


def _add_card(simulators: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    card = simulators.add_parser(
        "card",
        help="tap a virtual contactless card on vpcd's virtual reader (pcscd)",
        description="Tap a virtual contactless card on a vsmartcard-vpcd reader: pcscd must be running.",
    )
    card.add_argument(
        "--port",
        type=reader_port,
        required=True,
        help=f"vpcd reader port ({DEFAULT_PORT}: 'Virtual PCD 00 00', {DEFAULT_PORT + 1}: 'Virtual PCD 00 01')",
    )
    card.add_argument("--uid", type=card_uid, required=True, help="card UID in hex, 4, 7 or 10 bytes (04:A1:B2:C3)")
    card.add_argument("--host", default=DEFAULT_HOST, help="address of pcscd's machine (default: loopback)")
    card.add_argument("--taps", type=_positive, default=1, metavar="N", help="how many taps (default 1)")
    card.add_argument(
        "--hold", type=_seconds, default=0.5, metavar="S", help="seconds on the reader per tap (default 0.5)"
    )
    card.add_argument(
        "--gap", type=_non_negative_float, default=1.0, metavar="S", help="seconds between taps (default 1.0)"
    )
    card.add_argument(
        "--status", type=status_word, default=None, metavar="SW", help="answer GET UID with this status (6A81)"
    )
    card.add_argument("--feedback", action="store_true", help="accept the reader's LED/buzzer command (ACR122U)")
    card.set_defaults(func=run_card)


def card_uid(text: str) -> bytes:
    """argparse type: a card UID in hex, 4, 7 or 10 bytes; spaces and colons between bytes allowed."""
    digits = re.sub(r"[\s:]", "", text)
    try:
        uid = bytes.fromhex(digits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be hex digits (spaces or colons allowed), got {text!r}") from None
    if len(uid) not in UID_LENGTHS:
        raise argparse.ArgumentTypeError(f"must be 4, 7 or 10 bytes, got {len(uid)} in {text!r}")
    return uid


def status_word(text: str) -> bytes:
    """argparse type: a status word as 4 hex digits, such as 6A81."""
    if not re.fullmatch(r"[0-9A-Fa-f]{4}", text.strip()):
        raise argparse.ArgumentTypeError(f"must be 4 hex digits such as 6A81, got {text!r}")
    return bytes.fromhex(text.strip())


def reader_port(text: str) -> int:
    """argparse type: a TCP port to connect to, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, got {value}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP/UDP port, 0 (any free port) to 65535."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number more than 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number more than 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seconds, 0 or more, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be seconds, 0 or more, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seconds, more than 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be seconds, more than 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def run_zk(args: argparse.Namespace) -> int:
    """Serve a ZK terminal as ``args`` describe until SIGINT/SIGTERM; returns the exit code."""
    device = ZkDevice.generate(
        args.users,
        args.records,
        record_format=args.record_format,
        user_format=args.user_format,
        serial=args.serial,
        seed=args.seed,
        clock_offset_s=args.clock_offset,
        rec_cap=args.capacity,
    )
    simulator = ZkSimulator(
        device,
        host=args.host,
        port=args.port,
        protocol=args.protocol,
        password=args.password,
        punch_every_s=args.punch_every,
        seed=args.seed,
    )
    simulator.delay_s = args.delay
    protocols = "tcp+udp" if args.protocol == "both" else args.protocol
    with _stop_signals() as stop:
        try:
            simulator.start()
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        try:
            print(
                f"ZK simulator {device.serial} listening on {args.host}:{simulator.port} ({protocols}), "
                f"{device.user_count} users, {device.record_count} records",
                flush=True,
            )
            # A timed wait keeps the main thread able to run the signal handler promptly.
            while not stop.wait(0.5):
                pass
        finally:
            simulator.stop()
    return 0


def run_card(args: argparse.Namespace) -> int:
    """Tap a virtual card ``args.taps`` times, one line per tap; CardError if no reader listens."""
    card = VirtualCard(args.uid, host=args.host, port=args.port, status=args.status, feedback=args.feedback)
    done = 0
    try:
        for number in range(1, args.taps + 1):
            if number > 1:
                time.sleep(args.gap)
            tap = card.tap(hold_s=args.hold)
            done = number
            print(f"tap {number}/{args.taps}: {describe_tap(tap, card.address)}", flush=True)
    except KeyboardInterrupt:
        # tap() has already taken the card off the reader on its way out.
        print(f"interrupted after {done} of {args.taps} tap(s)", file=sys.stderr)
        return 130
    return 0


def describe_tap(tap: Tap, address: str) -> str:
    """One line about a tap: the card, the reader, how often the UID was read, the feedback."""
    feedback = ", ".join(item.apdu.hex().upper() for item in tap.feedback) or "none"
    return f"card {tap.uid.hex().upper()} on {address}, read {tap.uid_reads} time(s), feedback: {feedback}"


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event that SIGINT or SIGTERM sets while the block runs; old handlers restored after.

    The handlers are in place before the simulator announces itself, so a signal sent as soon as
    the ready line appears is never taken by the default handlers.
    """
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("ekinerja.sim.zk").info("signal %d: stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m ekinerja.drivers.sim.cli zk ...``."""
    parser = argparse.ArgumentParser(prog="ekinerja sim", description="Run a device simulator.")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    simulators = parser.add_subparsers(dest="simulator", required=True, metavar="SIMULATOR")
    _add_zk(simulators)
    _add_card(simulators)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
    except OperatorError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
