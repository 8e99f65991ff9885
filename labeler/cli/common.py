"""What every command shares: the database option, the rules options, the routing-policy options and
the helpers that open the store and check a source path."""

from __future__ import annotations

import argparse
import sys

from labeler.util import input_file  # noqa: F401  (re-exported for the command modules)
from labeler.util import source_path

#: the routing-policy options a command line may override (labeler.routing.RoutingPolicy fields)
POLICY_OPTS = ("target_precision", "method", "audit_size", "audit_seed", "audit_always")
CONFIG_HELP = "TOML file overriding detection/crop/model/routing settings"


def db_opt() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db", default=None, help="database URL or SQLite file (default: $LABELER_DB or sqlite:///labeler.db)")
    return p


def rules_opt() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--rules", default=None, help="keyword rules file (default: the shipped labeler/data/rules.txt)")
    p.add_argument("--folders", action="store_true", help="also match parent folder names (off by default)")
    return p


def config_opt() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", default=None, help=CONFIG_HELP)
    return p


def policy_opt() -> argparse.ArgumentParser:
    """--config and the auto-accept options (labeler.routing.RoutingPolicy)."""
    t = argparse.ArgumentParser(add_help=False)
    t.add_argument("--target-precision", type=float, default=None,
                   help="conformal: the auto-accepted set's expected share of right labels is at least this; bucket: a "
                        "bucket's lower 95%% bound must reach it (default: [routing] target_precision of --config, else 0.95)")
    t.add_argument("--method", default=None, choices=["conformal", "conformal-class", "bucket"],
                   help="how auto-accept decides (default conformal: one audit sample, a guarantee on the whole set)")
    t.add_argument("--audit-size", type=int, default=None, help="conformal: blind audits asked for (default 100)")
    t.add_argument("--audit-seed", type=int, default=None, help="conformal: seed of the audit order (default 0)")
    t.add_argument("--audit-always", action="store_const", const=True, default=None,
                   help="conformal: ask for the audits even where they would not pay for themselves in review time")
    t.add_argument("--config", default=None, help=CONFIG_HELP)
    return t


def store(args, new: bool = False):
    """The project's database; only ``ingest``/``autolabel`` (``new``) may create a SQLite file."""
    from labeler.store import Store

    return Store(args.db, existing=not new)


def rules(args):
    from labeler.ingest.rules import load_rules

    return load_rules(getattr(args, "rules", None))


def policy(args):
    """The routing policy of --config with the command line's policy options applied."""
    from dataclasses import replace

    from labeler.config import load_config

    pol = load_config(getattr(args, "config", None)).routing
    over = {k: getattr(args, k, None) for k in POLICY_OPTS}
    return replace(pol, **{k: v for k, v in over.items() if v is not None})


def check_source(args) -> bool:
    """The path to ingest checked (labeler.ingest.walk.check_source: a file that is not an image or a
    video is an error, an empty folder a warning); False when there is nothing to do: an empty
    folder and no database yet (none is made)."""
    from labeler.ingest.walk import check_source as check
    from labeler.store import StoreError, require_existing

    warning = check(source_path(args.path))
    if warning is None:
        return True
    try:
        require_existing(args.db)
    except StoreError:
        warning += "; no database was made"
    print(f"labeler: warning: {warning}.", file=sys.stderr)
    return not warning.endswith("made")


def example(*lines: str) -> dict:
    """The ``epilog`` of a command's --help: its examples."""
    return {"epilog": "examples:\n" + "\n".join(f"  {ln}" for ln in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}
