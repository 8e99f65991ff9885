"""People's part: `labeler ui` (the review app), `labeler issues` (labels likely wrong, agreement),
`labeler report` (the data report), `labeler eval` (against a labels file)."""

from __future__ import annotations

from labeler.cli import common as C


def cmd_ui(args) -> int:
    from labeler.errors import LabelerError
    from labeler.store import require_existing
    from labeler.ui.launch import launch

    if not 1 <= args.port <= 65535:
        raise LabelerError(f"--port: expected a TCP port from 1 to 65535, found {args.port}.")
    require_existing(args.db)  # the app must not start on an empty file made by a typo
    if args.config:
        from labeler.config import load_config

        load_config(args.config)  # a bad file is refused here, not in the browser
    return launch(args.db, port=args.port, host=args.host, config=args.config)


def cmd_issues(args) -> int:
    from labeler.reports.quality import issues_report

    print("\n".join(issues_report(C.store(args), args.method, args.kind, args.flagged, args.limit)))
    return 0


def cmd_report(args) -> int:
    from labeler.reports.datastore import write_report

    s = write_report(C.store(args), args.out)
    print(f"data report of {s.n_faces} faces (beside FER2013 train) written to {args.out}")
    return 0


def cmd_eval(args) -> int:
    from labeler.config import load_config
    from labeler.reports.evaluate import report

    cfg, labels = load_config(args.config), C.input_file(args.labels, "labels file")
    print(report(C.store(args), labels, cfg.routing))
    return 0


def add(sub, o) -> None:
    s = sub.add_parser("ui", parents=[o.db, o.config], help="the review app in the browser: audits, grid pages, cards (Streamlit)",
                       **C.example("labeler ui", "labeler ui --host 0.0.0.0 --port 8502   # a team on one server"))
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: localhost only)")
    s.set_defaults(func=cmd_ui)

    s = sub.add_parser("issues", parents=[o.db], help="the labels most likely wrong (confident learning), agreement, consensus",
                       **C.example("labeler issues --limit 50", "labeler issues --kind import --flagged"))
    s.add_argument("--limit", type=int, default=20, help="faces listed, most suspicious first (default 20)")
    s.add_argument("--kind", default=None, help="only labels from these, comma-separated: human,import,auto,keyword")
    s.add_argument("--flagged", action="store_true", help="only the labels confident learning counts as errors")
    s.add_argument("--method", default="self_confidence", help="score: self_confidence (1 - p(label)), normalized_margin, "
                   "adjusted_margin (confident learning's class thresholds), confidence_weighted_entropy")
    s.set_defaults(func=cmd_issues)

    s = sub.add_parser("report", parents=[o.db], help="write the HTML data report (charts beside FER2013 train)",
                       **C.example("labeler report --out report.html"))
    s.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("eval", parents=[o.db, o.config], help="compare the database with a labels CSV",
                       **C.example("labeler eval --labels labels.csv"))
    s.add_argument("--labels", required=True)
    s.set_defaults(func=cmd_eval)
