"""The ``ekinerja`` command: one entry point for the gateway, the store, the simulators and the demo.

Each part registers its own subcommands; a handler returns the process exit code. A config error
is printed without a traceback and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ekinerja.errors import OperatorError

# Each part registers its own subcommands. Only the part named on the command line is imported:
# the store pulls in FastAPI and Alembic, which a gateway pull should not pay for at start-up.
PARTS = {
    "demo": ("ekinerja.demo", "run a store, two simulated terminals and a gateway on this machine"),
    "gateway": ("ekinerja.gateway.cli", "the office gateway"),
    "store": ("ekinerja.store.cli", "the central attendance store"),
    "sim": ("ekinerja.drivers.sim.cli", "simulated devices for tests and demos"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, the other parts are listed but not loaded."""
    parser = argparse.ArgumentParser(prog="ekinerja", description="e-Kinerja attendance gateway and store")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, text) in PARTS.items():
        if only is None or name == only:
            importlib.import_module(module).register(commands)
        else:
            commands.add_parser(name, help=text)
    return parser


def _named_part(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in PARTS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_named_part(argv)).parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries log every job run and request at INFO; operators need only their warnings.
    for noisy in ("apscheduler", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        code: int = args.func(args)
    except OperatorError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
