"""The `spe` command line: one sub-command module per area, registered in COMMANDS.

This is an entry point, so it is the only place (with the hub config file) that reads the
environment (`SPE_HOME`, `SPE_DB_URL`) and turns it into `Settings`. Errors print as one
line; `--verbose` adds the traceback and the log file keeps the detail.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hub.exceptions import SpeError
from hub.settings import Settings

# Each module exposes register(subparsers) and sets `func(args, settings)` on its parsers.
COMMANDS = [
    "hub.cli.dataset",
    "hub.cli.permit",
    "hub.cli.optout",
    "hub.cli.audit",
    "hub.cli.synth",
]

log = logging.getLogger("spe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spe", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="show details and tracebacks")
    parser.add_argument("--home", help="SPE state directory (default $SPE_HOME or ./.spe)")
    parser.add_argument("--db-url", help="registry database URL (default $SPE_DB_URL or SQLite in home)")
    parser.add_argument("--actor", help="operator name recorded in the audit trail (default $SPE_ACTOR or $USER)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # command module not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env(home=args.home, db_url=args.db_url, actor=args.actor)
    settings.configure_logging(verbose=args.verbose)
    try:
        return int(args.func(args, settings) or 0)
    except SpeError as err:
        log.debug("command failed", exc_info=True)
        print(f"spe: error: {err}", file=sys.stderr)
        if args.verbose:
            import traceback

            traceback.print_exc()
        return err.exit_code
    except Exception as err:  # a failure: one line for the user, the detail in the log
        log.debug("command failed", exc_info=True)
        print(f"spe: failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
              f"(details: {settings.log_file}; rerun with --verbose)", file=sys.stderr)
        if args.verbose:
            import traceback

            traceback.print_exc()
        return 3
    except KeyboardInterrupt:
        print("spe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
