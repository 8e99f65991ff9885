"""Getting the photos in: `labeler autolabel` (the main job), `labeler ingest`, `labeler rules`."""

from __future__ import annotations

import sys

from labeler.cli import common as C


def cmd_autolabel(args) -> int:
    from dataclasses import replace

    from labeler.config import load_config
    from labeler.fanout import Part, is_uri
    from labeler.pipeline import Autolabeler
    from labeler.reports.autoaccept import next_step_for
    from labeler.work import default_workers

    cfg = load_config(args.config)
    if any(getattr(args, k) is not None for k in C.POLICY_OPTS):
        cfg = replace(cfg, routing=C.policy(args))
    if args.model:
        cfg = replace(cfg, model=replace(cfg.model, name=args.model))
    if args.no_flip:
        cfg = replace(cfg, model=replace(cfg.model, flip=False))
    if not is_uri(args.path) and not C.check_source(args):  # a URI (s3://...) is listed by the run itself
        return 0
    part = Part.parse(args.part) if args.part else None
    rules = C.rules(args)  # a bad rules file is refused before a database is created
    store = C.store(args, new=True)
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise ValueError(f"--workers: expected 1 or more worker processes, found {workers}")
    al = Autolabeler(store, cfg, rules, workers=workers, ray=args.ray, clean=not args.no_clean, part=part)
    rep = al.run(args.path, include_folders=args.folders, progress=None if not args.quiet else False,
                 repropose_all=args.repropose)
    print(*rep.lines(), *next_step_for(store, cfg.routing), sep="\n")
    for w in rep.warnings():
        print(f"labeler: warning: {w}", file=sys.stderr)
    return 0


def cmd_ingest(args) -> int:
    from labeler.ingest.walk import ingest

    if not C.check_source(args):
        return 0
    rules = C.rules(args)  # a bad rules file is refused before a database is created
    rep = ingest(C.store(args, new=True), args.path, rules, include_folders=args.folders,
                 progress=None if not args.quiet else False)
    print("\n".join(rep.lines()))
    return 0


def cmd_rules_report(args) -> int:
    from labeler.ingest.walk import rules_for_paths
    from labeler.reports.rules import format_report, rules_report
    from labeler.store import reapply_rules

    C.input_file(args.labels, "labels file")
    store = C.store(args)
    if args.reapply:
        rs = C.rules(args)
        reapply_rules(store, lambda relpaths: rules_for_paths(rs, relpaths, args.folders))
    print(format_report(*rules_report(store, args.labels)))
    return 0


def cmd_rules_check(args) -> int:
    rs = C.rules(args)
    print(f"{rs.path}: {len(rs.rules)} rules, {len(rs.negations)} negation words, classes: {', '.join(sorted({r.label for r in rs.rules}))}")
    for name in args.names or []:
        m = rs.match(name, include_folders=args.folders)
        print(f"{name!r}: {m.state} {m.label or ''} {list(m.matches)} {('negated ' + str(list(m.negated))) if m.negated else ''}")
    return 0


def add(sub, o) -> None:
    s = sub.add_parser("autolabel", parents=[o.db, o.rules, o.policy],
                       help="ingest a folder, find the faces, propose labels, auto-accept what the audits allow (resumable)",
                       **C.example("labeler autolabel photos/", "labeler autolabel photos/ --db postgresql+psycopg://me@host/labels",
                                   "labeler autolabel photos/ --repropose   # after `labeler train` promoted a model",
                                   "labeler autolabel /shared/photos --part 1/4 --db postgresql+psycopg://me@host/labels"))
    s.add_argument("path", help="a folder or file, or a URI such as s3://bucket/photos (through fsspec: pip install 'labeler[remote]')")
    s.add_argument("--model", default=None, help="FER model name, name@version or sidecar path (default: the project's default)")
    s.add_argument("--repropose", action="store_true", help="re-run the model on every face without a human label and re-route it")
    s.add_argument("--workers", type=int, default=None, help="worker processes for detect/crop/propose (default: the cores available)")
    s.add_argument("--ray", default=None, metavar="auto|ADDRESS", help="Ray tasks on a cluster read the files and do the work (pip install 'labeler[ray]')")
    s.add_argument("--part", default=None, metavar="K/N", help="part K of N of the folder (by path): N drivers share it and one PostgreSQL")
    s.add_argument("--no-flip", action="store_true", help="no horizontal-flip averaging")
    s.add_argument("--no-clean", action="store_true", help="skip text/near-duplicate/non-photo measurements (`labeler clean` later)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_autolabel)

    s = sub.add_parser("ingest", parents=[o.db, o.rules], help="only hash, dedupe, decode a folder and apply the filename rules",
                       **C.example("labeler ingest photos/"))
    s.add_argument("path")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_ingest)

    r = sub.add_parser("rules", help="filename keyword rules: check a rules file, report how each rule did",
                       **C.example("labeler rules check --rules my_rules.txt 'angry-man (1).jpg'",
                                   "labeler rules report --labels labels.csv"))
    rs = r.add_subparsers(dest="rules_cmd", required=True)
    s = rs.add_parser("report", parents=[o.db, o.rules], help="per rule: firings, conflicts, precision")
    s.add_argument("--labels", default=None, help="CSV with path,label (or file,label) to measure precision against")
    s.add_argument("--reapply", action="store_true", help="re-apply the (given) rules file to every image first")
    s.set_defaults(func=cmd_rules_report)
    s = rs.add_parser("check", parents=[o.rules], help="validate a rules file and try names against it")
    s.add_argument("names", nargs="*")
    s.set_defaults(func=cmd_rules_check)
