"""Labels in and out: `labeler export` (a data set training code loads as it is) and `labeler import`."""

from __future__ import annotations

from labeler.cli import common as C


def cmd_export(args) -> int:
    from labeler.datasets.export import export
    from labeler.datasets.metadata import export_lines

    include = "human+auto+proposals" if args.include_proposals else args.include
    summary = export(C.store(args), args.format, args.out, include=include, min_agreement=args.min_agreement,
                     classes=args.classes, size=args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"exported {summary.get('written', summary.get('records'))} rows/files as {args.format} to {args.out}")
    print(*export_lines(summary), sep="\n")
    return 0


def cmd_import(args) -> int:
    from labeler.datasets.importer import import_csv
    from labeler.datasets.labelstudio import import_labelstudio

    C.input_file(args.file, "labels file")
    store = C.store(args)
    if args.format == "csv":
        rep = import_csv(store, args.file, annotator=args.annotator or "import", path_column=args.path_column,
                         label_column=args.label_column)
    else:
        rep = import_labelstudio(store, args.file, annotator=args.annotator)
    print("\n".join(rep.lines()))
    return 0


def add(sub, o) -> None:
    s = sub.add_parser("export", parents=[o.db], help="write a labeled data set (csv, jsonl, imagefolder, fer2013, hf, labelstudio)",
                       **C.example("labeler export --format imagefolder --out dataset/",
                                   "labeler export --format csv --out labels.csv --include-proposals"))
    s.add_argument("--format", required=True, choices=["csv", "jsonl", "imagefolder", "fer2013", "hf", "labelstudio"])
    s.add_argument("--out", required=True)
    s.add_argument("--include", default="human+auto", choices=["human", "human+auto", "human+auto+proposals"],
                   help="which labels count (data-set formats)")
    s.add_argument("--include-proposals", action="store_true",
                   help="also faces still in review, with the model's proposal, marked unverified (= --include human+auto+proposals)")
    s.add_argument("--min-agreement", type=float, default=0.0, help="minimum share of annotators agreeing on a human label")
    s.add_argument("--classes", default=None, help="comma-separated classes to export")
    s.add_argument("--size", type=int, default=112, help="crop size for image formats")
    s.add_argument("--seed", type=int, default=0, help="split seed")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("import", parents=[o.db], help="record existing labels as human annotations (csv, Label Studio)",
                       **C.example("labeler import --format csv labels.csv",
                                   "labeler import --format csv old.csv --path-column image --label-column emotion"))
    s.add_argument("--format", required=True, choices=["csv", "labelstudio"])
    s.add_argument("file")
    s.add_argument("--annotator", default=None)
    s.add_argument("--path-column", default=None, help="csv: the column of image paths (default: path, file, image, filename...)")
    s.add_argument("--label-column", default="label", help="csv: the column of labels (default: label)")
    s.set_defaults(func=cmd_import)
