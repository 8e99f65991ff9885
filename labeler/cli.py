"""The `labeler` command line. Thin: parses arguments, calls the modules, prints results."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import __version__


def _store(args):
    from .store import Store

    return Store(args.db)


def _rules(args):
    from .rules import load_rules

    return load_rules(getattr(args, "rules", None))


def cmd_ingest(args) -> int:
    from .ingest import ingest

    store = _store(args)
    rep = ingest(store, args.path, _rules(args), include_folders=args.folders, progress=None if not args.quiet else False)
    print("\n".join(rep.lines()))
    return 0


def cmd_status(args) -> int:
    store = _store(args)
    c = store.counts()
    order = [
        ("images", "distinct images"),
        ("paths", "paths"),
        ("ingested", "ingested (decodable)"),
        ("broken", "broken"),
        ("rule_labeled", "rule-labeled (one class)"),
        ("rule_ambiguous", "ambiguous name (two classes)"),
        ("rule_none", "no keyword"),
        ("detected_images", "face detection done"),
        ("faces", "faces (labeling units)"),
        ("route_auto", "auto-accepted"),
        ("route_review", "routed to review"),
        ("review_remaining", "  of which still unlabeled"),
        ("route_no_face", "no face"),
        ("route_broken", "broken (routed)"),
        ("human_labeled_faces", "faces with a human label"),
    ]
    print(f"database: {store.url}")
    for key, text in order:
        print(f"{text:32s} {c.get(key, 0):7d}")
    return 0


def cmd_rules_report(args) -> int:
    from .rulesreport import format_report, rules_report

    store = _store(args)
    if args.reapply:
        _reapply_rules(store, _rules(args), args.folders)
    print(format_report(*rules_report(store, args.labels)))
    return 0


def _reapply_rules(store, rules, folders: bool) -> None:
    from sqlalchemy import select

    from .ingest import apply_rules
    from .store import Image

    with store.session() as s:
        for img in s.scalars(select(Image)):
            apply_rules(s, img, rules, folders)


def cmd_rules_check(args) -> int:
    rs = _rules(args)
    print(f"{rs.path}: {len(rs.rules)} rules, {len(rs.negations)} negation words, classes: {', '.join(sorted({r.label for r in rs.rules}))}")
    for name in args.names or []:
        m = rs.match(name, include_folders=args.folders)
        print(f"{name!r}: {m.state} {m.label or ''} {list(m.matches)} {('negated ' + str(list(m.negated))) if m.negated else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labeler", description="Semi-automatic labeling of facial-expression data sets.")
    p.add_argument("--version", action="version", version=f"labeler {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help="database URL or SQLite file (default: $LABELER_DB or sqlite:///labeler.db)")
    rules_opt = argparse.ArgumentParser(add_help=False)
    rules_opt.add_argument("--rules", default=None, help="keyword rules file (default: the shipped labeler/data/rules.txt)")
    rules_opt.add_argument("--folders", action="store_true", help="also match parent folder names (off by default)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("ingest", parents=[common, rules_opt], help="hash, dedupe, decode a folder and apply the filename rules")
    s.add_argument("path")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("status", parents=[common], help="counts by state")
    s.set_defaults(func=cmd_status)

    r = sub.add_parser("rules", help="filename keyword rules").add_subparsers(dest="rules_cmd", required=True)
    s = r.add_parser("report", parents=[common, rules_opt], help="per rule: firings, conflicts, precision")
    s.add_argument("--labels", default=None, help="CSV with path,label (or file,label) to measure precision against")
    s.add_argument("--reapply", action="store_true", help="re-apply the (given) rules file to every image first")
    s.set_defaults(func=cmd_rules_report)
    s = r.add_parser("check", parents=[rules_opt], help="validate a rules file and try names against it")
    s.add_argument("names", nargs="*")
    s.set_defaults(func=cmd_rules_check)

    _extend(sub, common, rules_opt)
    return p


def _extend(sub, common, rules_opt) -> None:
    """Commands from later modules register here (kept in one place so nothing imports cli)."""
    for modname in ("labeler.cli_pipeline", "labeler.cli_more"):
        try:
            mod = __import__(modname, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue
            raise
        mod.register(sub, common, rules_opt)


def main(argv: Optional[list[str]] = None) -> int:
    from .modelfiles import ModelFileError
    from .rules import RulesError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (RulesError, ModelFileError, FileNotFoundError, ValueError) as e:
        print(f"labeler: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labeler: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
