"""CLI commands for the data-set side: export, import, ui, train, models, calibrate."""

from __future__ import annotations

import json


def _store(args):
    from .store import Store

    return Store(args.db)


def cmd_export(args) -> int:
    from .export import export

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
    from .importer import import_csv, import_labelstudio

    store = _store(args)
    if args.format == "csv":
        rep = import_csv(store, args.file, annotator=args.annotator or "import")
    else:
        rep = import_labelstudio(store, args.file, annotator=args.annotator)
    print("\n".join(rep.lines()))
    return 0


def cmd_ui(args) -> int:
    from .ui_launch import launch

    return launch(args.db, port=args.port, host=args.host)


def cmd_train(args) -> int:
    from . import retrain

    store = _store(args)
    kw = dict(base=args.base, holdout=args.holdout, seed=args.seed, force=args.force, verbose=False)
    if args.mode == "finetune":
        kw["epochs"] = args.epochs
    res = retrain.train(store, mode=args.mode, **kw)
    print("\n".join(retrain.report_lines(res)))
    return 0


def cmd_models(args) -> int:
    from . import retrain

    store = _store(args)
    if args.default:
        print(f"default model: {retrain.set_default(store, args.default)}")
    print("\n".join(retrain.models_lines(store)))
    return 0


def cmd_calibrate(args) -> int:
    from . import retrain

    res = retrain.calibrate(_store(args), args.model)
    print(json.dumps({k: v for k, v in res.items() if k in ("ident", "temperature", "before", "after", "sidecar")}, indent=2, default=str))
    return 0


def register(sub, common, rules_opt) -> None:
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
    s.add_argument("--holdout", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--epochs", type=int, default=10, help="finetune epochs")
    s.add_argument("--force", action="store_true", help="make it the default even if not better on held-out")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("models", parents=[common], help="list FER model versions; --default NAME makes one the default")
    s.add_argument("--default", default=None)
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("calibrate", parents=[common], help="fit a temperature for a model on held-out human labels")
    s.add_argument("--model", default=None)
    s.set_defaults(func=cmd_calibrate)
