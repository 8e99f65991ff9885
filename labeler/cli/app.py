"""`labeler`'s parser, its commands in the order of the work, and :func:`main`."""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace
from typing import Optional

from labeler import __version__
from labeler.cli import auto, common, deliver, improve, review, start

#: the stages of the work, in order: (title, module); each module adds its commands
STAGES = (
    ("1. get the photos in", start),
    ("2. see what auto-accept may take", auto),
    ("3. review (people)", review),
    ("4. deliver the data set", deliver),
    ("5. better proposals from your labels", improve),
)

OVERVIEW = """Semi-automatic labeling of facial-expression data sets (7 classes).

the work, in order:
  1. labeler autolabel PHOTOS      find every face, propose labels, route them
  2. labeler status / audit        what is left, the audits auto-accept needs, what to do next
  3. labeler ui                    answer audits, confirm grid pages, label the rest
  4. labeler export --format ...   a data set training code loads as it is
  5. labeler train; labeler autolabel PHOTOS --repropose   learn your labels, propose again

`labeler COMMAND --help` shows a command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labeler", description=OVERVIEW, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"labeler {__version__}")
    # --db is accepted before the command too (`labeler --db URL status`)
    p.add_argument("--db", dest="global_db", default=None, help=argparse.SUPPRESS)
    opts = SimpleNamespace(db=common.db_opt(), rules=common.rules_opt(), policy=common.policy_opt(), config=common.config_opt())
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", title="commands, in the order of the work")
    for _title, mod in STAGES:
        mod.add(sub, opts)
    return p


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
