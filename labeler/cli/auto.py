"""Where the project stands and what auto-accept may take: `labeler status`, `labeler audit`,
`labeler route`, `labeler clean`."""

from __future__ import annotations

from labeler.cli import common as C


def _auto_lines(store, policy) -> None:
    from labeler.reports.autoaccept import status_lines
    from labeler.store import status_counts

    print("", *status_lines(store, policy, status_counts(store).get("review_remaining", 0)), sep="\n")


def cmd_status(args) -> int:
    from labeler.reports.quality import status_lines as quality_lines
    from labeler.reports.status import status_lines

    store = C.store(args)
    print(*status_lines(store), *quality_lines(store), sep="\n")
    _auto_lines(store, C.policy(args))
    return 0


def cmd_audit(args) -> int:
    from labeler.reports.autoaccept import audit_lines

    print("\n".join(audit_lines(C.store(args), C.policy(args), batch=args.batch, seed=args.seed)))
    return 0


def cmd_route(args) -> int:
    from labeler.cleanup import reroute_checked

    store, pol = C.store(args), C.policy(args)
    checked, n = reroute_checked(store, pol)  # from stored evidence and the audits: no model
    print("\n".join([*checked.check_lines(), f"{n} faces re-routed"]))
    _auto_lines(store, pol)
    return 0


def cmd_clean(args) -> int:
    from labeler.cleanup import backfill

    print("\n".join(backfill(C.store(args), C.policy(args), progress=None if not args.quiet else False, text=args.text).lines()))
    return 0


def add(sub, o) -> None:
    s = sub.add_parser("status", parents=[o.db, o.policy],
                       help="counts by state, auto-accept's audits and estimate, human time, and what to do next",
                       **C.example("labeler status", "labeler status --db team.db --target-precision 0.98"))
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("audit", parents=[o.db, o.policy],
                       help="the blind audit sample auto-accept is calibrated on: answered, to go, the selection and its estimate",
                       **C.example("labeler audit", "labeler audit --audit-size 150 --audit-always"))
    s.add_argument("--seed", type=int, default=0, help="--method bucket: seed of the random audit samples")
    s.add_argument("--batch", type=int, default=10, help="--method bucket: faces drawn per open bucket")
    s.set_defaults(func=cmd_audit)
    s = sub.add_parser("route", parents=[o.db, o.policy],
                       help="re-route every face from its stored proposals and the audits (after a policy change or imports)",
                       **C.example("labeler route --target-precision 0.98", "labeler route --method conformal-class"))
    s.set_defaults(func=cmd_route)
    s = sub.add_parser("clean", parents=[o.db, o.policy],
                       help="measure text, non-photo score and near-duplicates of images stored before autolabel did; re-route",
                       **C.example("labeler clean", "labeler clean --text   # text on every image, not only before auto-accept"))
    s.add_argument("--text", action="store_true", help="look for text on every image too (by default only where a face is about to be auto-accepted)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_clean)
