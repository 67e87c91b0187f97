"""The ``ekinerja`` command: one entry point for the gateway, the store, the simulators and the demo.

Each part registers its own subcommands; a handler returns the process exit code. A config error
is printed without a traceback and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ekinerja.config.loader import ConfigError

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every part's subcommands."""
    from ekinerja import demo
    from ekinerja.drivers.sim import cli as sim_cli
    from ekinerja.gateway import cli as gateway_cli
    from ekinerja.store import cli as store_cli

    parser = argparse.ArgumentParser(prog="ekinerja", description="e-Kinerja attendance gateway and store")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.register(commands)
    gateway_cli.register(commands)
    store_cli.register(commands)
    sim_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries log every job run and request at INFO; operators need only their warnings.
    for noisy in ("apscheduler", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
