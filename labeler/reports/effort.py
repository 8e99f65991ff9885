"""Human time, measured: seconds per face per annotator and per kind of decision (card, Enter on a
right proposal, audit, grid face, grid mark), and the time the work left will likely take
(``labeler.flow.plan`` priced with the project's own medians where it has them). What `labeler status`
and the Overview page show."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from labeler.flow import TimeModel, plan, say
from labeler.routing import RoutingPolicy
from labeler.store import Store, effort_rows, plan_of, members, waiting_faces


@dataclass(frozen=True)
class Effort:
    rows: list  # labeler.store.EffortRow
    model: TimeModel  # the time model with the project's medians in
    steps: list  # labeler.flow.Step, in the order to take them
    next_steps: str  # "next: 3 grid pages of happy, then 41 cards (about 2 min)"
    left_seconds: float


def measured_model(rows) -> TimeModel:
    """The default time model with the project's own median seconds per kind where it has ten or more."""
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r.effort, []).extend([r.median] * r.decisions)
    med = {k: statistics.median(v) for k, v in by.items() if len(v) >= 10}
    return TimeModel.measured({"card": med.get("card"), "card_accept": med.get("card_accept"), "audit": med.get("audit"),
                               "grid_seen": med.get("grid_face")})


def effort(store: Store, policy: RoutingPolicy) -> Effort:
    rows = effort_rows(store)
    tm = measured_model(rows)
    asked = len(plan_of(members(store, policy), policy).asked) if policy.method != "bucket" else 0
    steps = plan(asked, waiting_faces(store, policy), tm)
    return Effort(rows, tm, steps, say(steps), sum(s.seconds for s in steps))


def effort_lines(e: Effort) -> list[str]:
    out = ["human time (measured; a decision's time is capped at 60 s):"]
    if not e.rows:
        out.append("  no timed decisions yet")
    for r in e.rows:
        out.append(f"  {r.annotator:16s} {r.effort:12s} {r.decisions:6d} decisions, median {r.median:5.1f} s, "
                   f"{r.seconds / 60:6.1f} min in all")
    faces = sum(r.decisions for r in e.rows)
    if faces:
        out.append(f"  {sum(r.seconds for r in e.rows) / faces:.2f} s per decision over {faces} decisions")
    out.append(f"  {e.next_steps}")
    return out
