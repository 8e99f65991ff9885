"""The `labeler` command line, the one place that defines every command. Thin: parses arguments,
calls the library, prints results; user errors (:class:`labeler.errors.LabelerError`) become one line
on stderr and exit status 2. Nothing imports this module."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from labeler import __version__
from labeler.util import input_file as _input_file
from labeler.util import source_path as _source


def _store(args, new: bool = False):
    """The project's database; only ``ingest``/``autolabel`` (``new``) may create a SQLite file."""
    from labeler.store import Store

    return Store(args.db, existing=not new)


def _rules(args):
    from labeler.ingest.rules import load_rules

    return load_rules(getattr(args, "rules", None))


def cmd_ingest(args) -> int:
    from labeler.ingest.walk import ingest

    _source(args.path)
    rules = _rules(args)  # a bad rules file is refused before a database is created
    store = _store(args, new=True)
    rep = ingest(store, args.path, rules, include_folders=args.folders, progress=None if not args.quiet else False)
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
    from labeler.store import mask_url

    print(f"database: {mask_url(store.url)}")
    for key, text in order:
        print(f"{text:32s} {c.get(key, 0):7d}")
    from labeler.videolabel import status_lines

    print(*status_lines(store, c), sep="\n")
    _print_buckets(store, _policy(args))
    return 0


def _policy(args):
    """The routing policy of --config with --target-precision applied (labeler.routing.RoutingPolicy)."""
    from dataclasses import replace

    from labeler.config import load_config

    pol = load_config(getattr(args, "config", None)).routing
    t = getattr(args, "target_precision", None)
    return pol if t is None else replace(pol, target_precision=t)


def _print_buckets(store, policy) -> None:
    from labeler.audit import table
    from labeler.store import audit_plan

    print("\n".join(table([p.state for p in audit_plan(store, policy)], policy.target_precision)))


def cmd_audit(args) -> int:
    from labeler.audit import table
    from labeler.store import audit_plan, face_names

    store, pol = _store(args), _policy(args)
    plans = audit_plan(store, pol, seed=args.seed, batch=args.batch)
    print("\n".join(table([p.state for p in plans], pol.target_precision)))
    todo = [p for p in plans if p.sample]
    names = face_names(store, [f for p in todo for f in p.sample])
    for p in todo:
        print(f"\n{p.estimate.bucket}: {p.state.why}; show these {len(p.sample)} faces, proposal hidden (audit cards in `labeler ui`):")
        for f in p.sample:
            print(f"  face {f}  {names.get(f, '')}")
    if not todo:
        print("\nevery bucket is settled: nothing to audit")
    return 0


def cmd_rules_report(args) -> int:
    from labeler.reports.rules import format_report, rules_report

    _input_file(args.labels, "labels file")
    store = _store(args)
    if args.reapply:
        _reapply_rules(store, _rules(args), args.folders)
    print(format_report(*rules_report(store, args.labels)))
    return 0


def _reapply_rules(store, rules, folders: bool) -> None:
    from labeler.ingest.walk import rules_for_paths
    from labeler.store import reapply_rules

    reapply_rules(store, lambda relpaths: rules_for_paths(rules, relpaths, folders))


def cmd_rules_check(args) -> int:
    rs = _rules(args)
    print(f"{rs.path}: {len(rs.rules)} rules, {len(rs.negations)} negation words, classes: {', '.join(sorted({r.label for r in rs.rules}))}")
    for name in args.names or []:
        m = rs.match(name, include_folders=args.folders)
        print(f"{name!r}: {m.state} {m.label or ''} {list(m.matches)} {('negated ' + str(list(m.negated))) if m.negated else ''}")
    return 0


def cmd_autolabel(args) -> int:
    from labeler.config import load_config
    from labeler.pipeline import Autolabeler
    from labeler.ingest.rules import load_rules

    cfg = load_config(args.config)
    if args.target_precision is not None:
        from dataclasses import replace

        cfg = replace(cfg, routing=_policy(args))
    if args.model:
        from dataclasses import replace

        cfg = replace(cfg, model=replace(cfg.model, name=args.model))
    if args.no_flip:
        from dataclasses import replace

        cfg = replace(cfg, model=replace(cfg.model, flip=False))
    _source(args.path)
    rules = load_rules(args.rules)  # a bad rules file is refused before a database is created
    store = _store(args, new=True)
    from labeler.work import default_workers

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise ValueError(f"--workers: expected 1 or more worker processes, found {workers}")
    al = Autolabeler(store, cfg, rules, workers=workers, ray=args.ray, clean=not args.no_clean)
    rep = al.run(args.path, include_folders=args.folders, progress=None if not args.quiet else False,
                 repropose_all=args.repropose)
    print("\n".join(rep.lines()))
    return 0


def cmd_route(args) -> int:
    from labeler.cleanup import reroute_checked

    store = _store(args)
    checked, n = reroute_checked(store, _policy(args))  # from stored evidence and the buckets' estimates: no model
    print("\n".join([*checked.check_lines(), f"{n} faces re-routed"]))
    _print_buckets(store, _policy(args))
    return 0


def cmd_clean(args) -> int:
    from labeler.cleanup import backfill

    print("\n".join(backfill(_store(args), _policy(args), progress=None if not args.quiet else False, text=args.text).lines()))
    return 0


def cmd_report(args) -> int:
    from labeler.reports.datastore import write_report

    s = write_report(_store(args), args.out)
    print(f"data report of {s.n_faces} faces (beside FER2013 train) written to {args.out}")
    return 0


def cmd_eval(args) -> int:
    from labeler.config import load_config
    from labeler.reports.evaluate import report

    cfg, labels = load_config(args.config), _input_file(args.labels, "labels file")
    print(report(_store(args), labels, cfg.routing))
    return 0


def cmd_export(args) -> int:
    from labeler.datasets.export import export

    summary = export(
        _store(args), args.format, args.out, include=args.include, min_agreement=args.min_agreement,
        classes=args.classes, size=args.size, seed=args.seed, overwrite=args.overwrite,
    )
    counts = summary.get("class_counts", {})
    print(f"exported {summary.get('written', summary.get('records'))} rows/files as {args.format} to {args.out}")
    if counts:
        print("class counts: " + json.dumps(counts, sort_keys=True))
    return 0


def cmd_import(args) -> int:
    from labeler.datasets.importer import import_csv
    from labeler.datasets.labelstudio import import_labelstudio

    _input_file(args.file, "labels file")
    store = _store(args)
    if args.format == "csv":
        rep = import_csv(store, args.file, annotator=args.annotator or "import")
    else:
        rep = import_labelstudio(store, args.file, annotator=args.annotator)
    print("\n".join(rep.lines()))
    return 0


def cmd_ui(args) -> int:
    from labeler.errors import LabelerError
    from labeler.ui.launch import launch

    if not 1 <= args.port <= 65535:
        raise LabelerError(f"--port: expected a TCP port from 1 to 65535, found {args.port}.")
    from labeler.store import require_existing

    require_existing(args.db)  # the app must not start on an empty file made by a typo
    return launch(args.db, port=args.port, host=args.host)


def cmd_train(args) -> int:
    from labeler.training import train

    res = train(_store(args), mode=args.mode, base=args.base, holdout=args.holdout, seed=args.seed, force=args.force,
                epochs=args.epochs if args.mode == "finetune" else None, base_data=args.base_data)
    print("\n".join(res.lines()))
    return 0


def cmd_models(args) -> int:
    from labeler.training import project_models, set_default

    store = _store(args)
    if args.default:
        print(f"default model: {set_default(store, args.default)}")
    print("\n".join(row.line() for row in project_models(store)))
    return 0


def cmd_calibrate(args) -> int:
    from labeler.training import calibrate

    res = calibrate(_store(args), args.model)
    print(json.dumps({"sidecar": res.sidecar, "ident": res.ident, "temperature": res.temperature}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labeler", description="Semi-automatic labeling of facial-expression data sets.")
    p.add_argument("--version", action="version", version=f"labeler {__version__}")
    # --db is accepted before the command too (`labeler --db URL status`)
    p.add_argument("--db", dest="global_db", default=None, help=argparse.SUPPRESS)
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

    s = sub.add_parser("status", parents=[common, _target_opt()], help="counts by state, and the auto-accept buckets")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("audit", parents=[common, _target_opt()],
                       help="per auto-accept bucket: precision, what is still needed, the faces to audit")
    s.add_argument("--seed", type=int, default=0, help="seed of the random audit samples")
    s.add_argument("--batch", type=int, default=10, help="faces drawn per open bucket")
    s.set_defaults(func=cmd_audit)

    r = sub.add_parser("rules", help="filename keyword rules").add_subparsers(dest="rules_cmd", required=True)
    s = r.add_parser("report", parents=[common, rules_opt], help="per rule: firings, conflicts, precision")
    s.add_argument("--labels", default=None, help="CSV with path,label (or file,label) to measure precision against")
    s.add_argument("--reapply", action="store_true", help="re-apply the (given) rules file to every image first")
    s.set_defaults(func=cmd_rules_report)
    s = r.add_parser("check", parents=[rules_opt], help="validate a rules file and try names against it")
    s.add_argument("names", nargs="*")
    s.set_defaults(func=cmd_rules_check)

    _pipeline_commands(sub, common, rules_opt)
    _dataset_commands(sub, common)
    return p


def _target_opt() -> argparse.ArgumentParser:
    t = argparse.ArgumentParser(add_help=False)
    t.add_argument("--target-precision", type=float, default=None,
                   help="auto-accept a bucket only when its lower 95%% precision bound reaches this "
                        "(default: [routing] target_precision of --config, else 0.95)")
    t.add_argument("--config", default=None, help="TOML file overriding detection/crop/model/routing settings")
    return t


def _pipeline_commands(sub, common, rules_opt) -> None:
    cfg_opt = argparse.ArgumentParser(add_help=False)
    cfg_opt.add_argument("--config", default=None, help="TOML file overriding detection/crop/model/routing settings")

    tgt = argparse.ArgumentParser(add_help=False)
    tgt.add_argument("--target-precision", type=float, default=None,
                     help="auto-accept a bucket only when its lower 95%% precision bound reaches this (default 0.95)")
    s = sub.add_parser("autolabel", parents=[common, rules_opt, cfg_opt, tgt],
                       help="ingest, detect faces, propose labels, route (resumable)")
    s.add_argument("path")
    s.add_argument("--model", default=None, help="FER model name, name@version or sidecar path (default: the project's default)")
    s.add_argument("--repropose", action="store_true", help="re-run the model on every face without a human label and re-route it")
    s.add_argument("--workers", type=int, default=None, help="worker processes for detect/crop/propose (default: the cores available)")
    s.add_argument("--ray", default=None, metavar="auto|ADDRESS", help="run the work as Ray tasks on a cluster (pip install 'labeler[ray]')")
    s.add_argument("--no-flip", action="store_true", help="no horizontal-flip averaging")
    s.add_argument("--no-clean", action="store_true", help="skip text/near-duplicate/non-photo measurements (`labeler clean` later)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_autolabel)

    s = sub.add_parser("route", parents=[common, cfg_opt, tgt],
                       help="re-route every face from its stored proposals and the buckets' measured precision")
    s.set_defaults(func=cmd_route)

    s = sub.add_parser("clean", parents=[common, cfg_opt, tgt], help="measure text, non-photo score and near-"
                       "duplicates of images stored before autolabel did; regroup; re-route")
    s.add_argument("--text", action="store_true", help="look for text on every image too (by default only where a face is about to be auto-accepted)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_clean)
    s = sub.add_parser("report", parents=[common], help="write the HTML data report (charts beside FER2013 train)")
    s.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("eval", parents=[common, cfg_opt], help="compare the database with a labels CSV")
    s.add_argument("--labels", required=True)
    s.set_defaults(func=cmd_eval)


def _dataset_commands(sub, common) -> None:
    s = sub.add_parser("export", parents=[common], help="write a labeled data set")
    s.add_argument("--format", required=True, choices=["csv", "jsonl", "imagefolder", "fer2013", "hf", "labelstudio"])
    s.add_argument("--out", required=True)
    s.add_argument("--include", default="human+auto", choices=["human", "human+auto"], help="which labels count (data-set formats)")
    s.add_argument("--min-agreement", type=float, default=0.0, help="minimum share of annotators agreeing on a human label")
    s.add_argument("--classes", default=None, help="comma-separated classes to export")
    s.add_argument("--size", type=int, default=112, help="crop size for image formats")
    s.add_argument("--seed", type=int, default=0, help="split seed")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("import", parents=[common], help="record existing labels as human annotations")
    s.add_argument("--format", required=True, choices=["csv", "labelstudio"])
    s.add_argument("file")
    s.add_argument("--annotator", default=None)
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("ui", parents=[common], help="start the review app (Streamlit)")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: localhost only)")
    s.set_defaults(func=cmd_ui)

    s = sub.add_parser("train", parents=[common], help="train a new FER model version on the human labels")
    s.add_argument("--mode", choices=["head", "finetune"], default="head")
    s.add_argument("--base", default=None, help="model to start from (default: the project's default)")
    s.add_argument("--holdout", type=float, default=0.2, help="head: the share of each cross-validation fold (0.2: 5 folds); finetune: the held-out share")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--epochs", type=int, default=10, help="finetune epochs")
    s.add_argument("--force", action="store_true", help="make it the default even if it does not pass the promotion gate")
    s.add_argument("--base-data", default=None, metavar="DIR",
                   help="a <class>/*.jpg folder of your own reference set of the base model's domain: the gate judges on a "
                        "sample of it and the head is distilled on other images of it (default: the features of the base's "
                        "domain shipped with the model; for a model without them, agreement with the base where it is sure)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("models", parents=[common], help="list FER model versions; --default NAME makes one the default")
    s.add_argument("--default", default=None)
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("calibrate", parents=[common], help="fit a temperature for a model on held-out human labels")
    s.add_argument("--model", default=None)
    s.set_defaults(func=cmd_calibrate)


def main(argv: Optional[list[str]] = None) -> int:
    from labeler.errors import LabelerError

    args = build_parser().parse_args(argv)
    if getattr(args, "db", None) is None and getattr(args, "global_db", None):
        args.db = args.global_db
    try:
        return int(args.func(args) or 0)
    except (LabelerError, FileNotFoundError, ValueError) as e:
        print(f"labeler: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `labeler ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("labeler: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
