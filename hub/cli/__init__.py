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

from hub import extensions
from hub.exceptions import SpeError
from hub.settings import Settings

# Each module exposes register(subparsers) and sets `func(args, settings)` on its parsers.
COMMANDS = [
    "hub.cli.dataset",
    "hub.cli.permit",
    "hub.cli.optout",
    "hub.cli.catalogue",
    "hub.cli.application",
    "hub.cli.fees",
    "hub.cli.mirror",
    "hub.cli.audit",
    "hub.cli.synth",
    "hub.cli.hub",
    "hub.cli.kube",
    "hub.cli.meter",
    "hub.cli.services",
    "hub.cli.backup",
    "hub.cli.notify",
    "hub.cli.citizens",
    "hub.cli.retention",
]

log = logging.getLogger("spe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spe", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="show details and tracebacks")
    parser.add_argument("--home", help="SPE state directory (default $SPE_HOME or ./.spe)")
    parser.add_argument("--db-url", help="registry database URL (default $SPE_DB_URL or SQLite in home)")
    parser.add_argument("--actor", help="the name you act under; the trail records your Unix account@host as the actor "
                                             "and this only as detail.claimed_actor")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


READ_ONLY = {"list", "show", "log", "verify", "timeline", "export", "verify-pack"}


def _command_name(args) -> str:
    parts = [args.command] + [v for k, v in sorted(vars(args).items()) if k.endswith("_cmd") and v]
    return ".".join(parts)


def _audit_refusal(settings: Settings, args, err: SpeError) -> None:
    """A refused operator action is itself evidence (who tried what); best effort, never masks the error."""
    name = _command_name(args)
    # `kube` runs on an operator machine without the cluster's registry: a local one would mislead.
    if name.split(".")[-1] in READ_ONLY or args.command in ("synth", "kube", "backup"):  # a restore writes nothing on refusal
        return
    try:
        from hub import audit
        from hub.db import make_engine

        with make_engine(settings.db_url).begin() as conn:
            audit.record(conn, actor=settings.actor, role="operator", action=f"cli.{name}", outcome="refused",
                         permit_id=getattr(args, "permit_id", None), detail={"error": str(err)[:500]})
    except Exception:  # the registry itself may be what failed
        log.debug("could not audit the refusal", exc_info=True)


def _as_local_operator(settings: Settings, claimed: str | None) -> Settings:
    """The actor is the Unix account@host that runs this command, not the name it claims
    (`--actor`, $SPE_ACTOR): that is kept in each event's detail as `claimed_actor` (hub.identity)."""
    import dataclasses
    import os

    from hub.audit.attestation import attest_local_operator
    from hub.identity import local_operator

    op = local_operator(claimed or os.environ.get("SPE_ACTOR"))
    attest_local_operator(op.actor, op.detail())
    return dataclasses.replace(settings, actor=op.actor)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env(home=args.home, db_url=args.db_url, actor=args.actor)
    settings = _as_local_operator(settings, args.actor)
    settings.configure_logging(verbose=args.verbose)
    try:
        extensions.load_installed()  # egress's tables are created by any command, as hub's are
        return int(args.func(args, settings) or 0)
    except SpeError as err:
        log.debug("command failed", exc_info=True)
        print(f"spe: error: {err}", file=sys.stderr)
        _audit_refusal(settings, args, err)
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
