"""CLI commands for the batch pipeline: autolabel, route, eval, export, import, models, train, ui."""

from __future__ import annotations

import argparse


def _store(args):
    from .store import Store

    return Store(args.db)


def cmd_autolabel(args) -> int:
    from .config import load_config
    from .pipeline import Autolabeler
    from .rules import load_rules

    cfg = load_config(args.config)
    if args.model:
        from dataclasses import replace

        cfg = replace(cfg, model=replace(cfg.model, name=args.model))
    if args.no_flip:
        from dataclasses import replace

        cfg = replace(cfg, model=replace(cfg.model, flip=False))
    store = _store(args)
    al = Autolabeler(store, cfg, load_rules(args.rules))
    rep = al.run(args.path, include_folders=args.folders, progress=None if not args.quiet else False)
    if args.repropose:
        rep.reproposed += al.repropose(only_stale=False, progress=None if not args.quiet else False)
    print("\n".join(rep.lines()))
    return 0


def cmd_route(args) -> int:
    from .config import load_config
    from .pipeline import Autolabeler

    store = _store(args)
    n = Autolabeler(store, load_config(args.config)).reroute()
    print(f"{n} faces re-routed")
    return 0


def cmd_eval(args) -> int:
    from .config import load_config
    from .evaluate import report

    print(report(_store(args), args.labels, load_config(args.config).routing))
    return 0


def register(sub, common, rules_opt) -> None:
    cfg_opt = argparse.ArgumentParser(add_help=False)
    cfg_opt.add_argument("--config", default=None, help="TOML file overriding detection/crop/model/routing settings")

    s = sub.add_parser("autolabel", parents=[common, rules_opt, cfg_opt],
                       help="ingest, detect faces, propose labels, route (resumable)")
    s.add_argument("path")
    s.add_argument("--model", default=None, help="FER model name, name@version or sidecar path (default: the project's default)")
    s.add_argument("--repropose", action="store_true", help="re-run the model on every face without a human label and re-route it")
    s.add_argument("--no-flip", action="store_true", help="no horizontal-flip averaging")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_autolabel)

    s = sub.add_parser("route", parents=[common, cfg_opt], help="re-route every face from its stored proposals (after a policy change)")
    s.set_defaults(func=cmd_route)

    s = sub.add_parser("eval", parents=[common, cfg_opt], help="compare the database with a labels CSV")
    s.add_argument("--labels", required=True)
    s.set_defaults(func=cmd_eval)
