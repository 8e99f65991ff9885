"""Better proposals from the project's own labels: `labeler train`, `labeler models`, `labeler calibrate`."""

from __future__ import annotations

import json

from labeler.cli import common as C


def cmd_train(args) -> int:
    from labeler.training import train

    res = train(C.store(args), mode=args.mode, base=args.base, holdout=args.holdout, seed=args.seed, force=args.force,
                epochs=args.epochs if args.mode == "finetune" else None, base_data=args.base_data)
    print("\n".join(res.lines()))
    return 0


def cmd_models(args) -> int:
    from labeler.training import project_models, set_default

    store = C.store(args)
    if args.default:
        print(f"default model: {set_default(store, args.default)}")
    print("\n".join(row.line() for row in project_models(store)))
    return 0


def cmd_calibrate(args) -> int:
    from labeler.training import calibrate

    res = calibrate(C.store(args), args.model)
    print(json.dumps({"sidecar": res.sidecar, "ident": res.ident, "temperature": res.temperature}, indent=2))
    return 0


def add(sub, o) -> None:
    s = sub.add_parser("train", parents=[o.db], help="train a new model version on the human labels; the gate decides if it becomes the default",
                       **C.example("labeler train", "labeler train --mode finetune --epochs 10"))
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

    s = sub.add_parser("models", parents=[o.db], help="list FER model versions with their figures; --default NAME makes one the default",
                       **C.example("labeler models", "labeler models --default fer-mini-xception"))
    s.add_argument("--default", default=None)
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("calibrate", parents=[o.db], help="fit a temperature for a model on held-out human labels",
                       **C.example("labeler calibrate --model fer-ferplus-cnn"))
    s.add_argument("--model", default=None)
    s.set_defaults(func=cmd_calibrate)
