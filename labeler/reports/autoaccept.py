"""Where auto-accept stands, in words: what `labeler status`, `labeler audit`, `labeler route` and
the end of `labeler autolabel` print, and the one line saying what to do next.

Conformal methods (the default, ``labeler.selection``): the audits planned and answered, the
selection (threshold, faces accepted), its guarantee and the estimated precision of the accepted
set and of the data set as a whole. The per-bucket table stays as a diagnostic (``--method bucket``
decides by it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from labeler.audit import estimate, table
from labeler.routing import RoutingPolicy
from labeler.selection import dataset_accuracy, smallest_share
from labeler.store import Store, audit_plan, face_names, members, plan_of, select_plan, status_counts
from labeler.types import Estimate, Selection


@dataclass(frozen=True)
class AutoAcceptState:
    """The project's auto-accept state at one moment (conformal methods)."""

    selection: Selection
    asked: tuple[int, ...]  # faces to audit now, in order
    candidates: int
    human: int  # faces with a human label (any)
    auto: int  # faces the selection accepts now (not yet labeled by a person)

    def data_set(self) -> Estimate:
        return dataset_accuracy(self.human, self.auto, self.selection.estimate)


def state(store: Store, policy: RoutingPolicy) -> AutoAcceptState:
    ms = members(store, policy)
    plan = plan_of(ms, policy)
    sel = select_plan(plan, policy)
    human = status_counts(store).get("human_labeled_faces", 0)
    return AutoAcceptState(sel, plan.asked, len(ms), human, sel.accepted)


def _pct(e: Estimate) -> str:
    if e.precision is None:
        return "unknown"
    return f"{e.precision:.1%} (one-sided 95% bounds {e.lower:.1%} .. {e.upper:.1%})"


def selection_lines(st: AutoAcceptState, policy: RoutingPolicy) -> list[str]:
    sel = st.selection
    q = 1.0 - policy.target_precision
    n = sel.audit_size
    small = f" (--audit-size {policy.audit_size}, at most half the candidates)" if 0 < n < policy.audit_size else ""
    out = [f"auto-accept: {sel.method} selection at target precision {policy.target_precision:g} "
           f"(audit sample {n or 'none'}{small}, seed {policy.audit_seed}); {st.candidates} candidate faces"]
    if n == 0:
        return out + [f"  {sel.why}"]
    if not sel.ready:
        out.append(f"  audits: {sel.calibration} of {n} answered; {len(st.asked)} to go")
        out.append(f"  why {n}: with n blind audits the smallest set it can accept is 1/(q(n+1)) of the other "
                   f"candidates: {smallest_share(n, q):.0%} at n={n}, q={q:.2g}; more audits let it accept smaller, "
                   f"surer sets (--audit-size)")
        return out
    out.append(f"  audits: {sel.calibration} answered, {sel.wrong} proposals wrong; per class (audited/wrong): "
               + ", ".join(f"{k} {a}/{w}" for k, (a, w) in sel.per_class.items()))
    if sel.accepted:
        th = ", ".join(f"{v:.3f}" if k == "*" else f"{k} {v:.3f}" for k, v in sorted(sel.thresholds.items()))
        out.append(f"  selected: {sel.accepted} of {sel.test} faces (trust score at or above {th})")
        out.append(f"  guaranteed: {sel.guarantee()}")
        out.append(f"  estimated precision of the auto-accepted labels: {_pct(sel.estimate)}")
    else:
        out.append(f"  {sel.why}")
    out.append(f"  estimated accuracy of the data set (human + auto): {_pct(st.data_set())}")
    return out


def bucket_lines(store: Store, policy: RoutingPolicy) -> list[str]:
    """The per-bucket diagnostic: faces, audits and their precision per bucket (decides with --method bucket)."""
    if policy.method == "bucket":
        return table([p.state for p in audit_plan(store, policy)], policy.target_precision)
    by: dict[str, list] = {}
    for m in members(store, policy):
        v = by.setdefault(m.bucket, [0, 0, 0, 0.0])
        v[0] += 1
        v[3] += m.prob
        if m.audit_label is not None:
            v[1] += 1
            v[2] += int(m.audit_label == m.label)
    out = ["per bucket (a diagnostic; `--method bucket` certifies each bucket on its own):",
           f"  {'bucket':34s} {'faces':>6s} {'audited':>7s} {'agree':>6s} {'precision [95% bounds]':>26s}"]
    for b, (faces, aud, agree, psum) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        e = estimate(b, faces, aud, agree, psum / faces)
        prec = "-" if not aud else f"{e.precision:.3f} [{e.lower:.3f}, {e.upper:.3f}]"
        out.append(f"  {b:34s} {faces:6d} {aud:7d} {agree:6d} {prec:>26s}")
    return out


def _after_audits(flow: str) -> str:
    """The flow's words after its audit step ("next: 4 audit cards, then 1 grid page ..." -> "1 grid page ...")."""
    rest = flow[len("next: "):] if flow.startswith("next: ") else ""
    head, sep, tail = rest.partition(", then ")
    return tail if head.endswith("audit cards") and sep else ("" if head.endswith("audit cards") else rest)


def next_step(st: Optional[AutoAcceptState], policy: RoutingPolicy, remaining: int, flow: str = "") -> str:
    """One line: what a person should do next, and why (``flow``: the review flow's plan in words)."""
    if st is not None and not st.selection.ready and st.asked:
        return (f"next: answer {len(st.asked)} audit cards (`labeler ui`, Review page: they come first, proposal hidden; "
                f"or `labeler audit` lists them): auto-accept starts after {st.selection.audit_size} blind audits"
                + (f"; then {_after_audits(flow)}" if _after_audits(flow) else ""))
    if remaining:
        return (f"{flow or f'next: review the {remaining} faces left'} in `labeler ui` (Review leads: grid pages of "
                f"likely-right faces first, then cards), then `labeler export`")
    return "next: `labeler export --format imagefolder --out DIR` (every face has a label)"


def audit_lines(store: Store, policy: RoutingPolicy, batch: int = 10, seed: int = 0) -> list[str]:
    """`labeler audit`: the state, the per-bucket diagnostic and the faces to audit now."""
    if policy.method == "bucket":
        plans = audit_plan(store, policy, seed=seed, batch=batch)
        out = table([p.state for p in plans], policy.target_precision)
        todo = [p for p in plans if p.sample]
        names = face_names(store, [f for p in todo for f in p.sample])
        for p in todo:
            out.append(f"\n{p.estimate.bucket}: {p.state.why}; show these {len(p.sample)} faces, proposal hidden "
                       f"(audit cards in `labeler ui`):")
            out += [f"  face {f}  {names.get(f, '')}" for f in p.sample]
        if not todo:
            out.append("\nevery bucket is settled: nothing to audit")
        return out
    st = state(store, policy)
    out = selection_lines(st, policy) + [""] + bucket_lines(store, policy)
    if st.asked:
        names = face_names(store, st.asked)
        out.append(f"\nfaces to audit blind (audit cards in `labeler ui` show them first, proposal hidden), in order:")
        out += [f"  face {f}  {names.get(f, '')}" for f in st.asked]
    else:
        out.append("\nthe audit sample is complete: nothing to audit")
    return out


def status_lines(store: Store, policy: RoutingPolicy, remaining: int) -> list[str]:
    """The end of `labeler status`: the auto-accept state, human time, and what to do next."""
    from labeler.reports.effort import effort, effort_lines

    e = effort(store, policy)
    if policy.method == "bucket":
        return bucket_lines(store, policy) + ["", *effort_lines(e), "", next_step(None, policy, remaining, e.next_steps)]
    st = state(store, policy)
    return selection_lines(st, policy) + ["", *effort_lines(e), "", next_step(st, policy, remaining, e.next_steps)]


def next_step_for(store: Store, policy: RoutingPolicy) -> list[str]:
    """What the end of `labeler autolabel` prints: auto-accept's state in one line, then what to do next."""
    from labeler.reports.effort import effort

    remaining = status_counts(store).get("review_remaining", 0)
    flow = effort(store, policy).next_steps
    if policy.method == "bucket":
        return [next_step(None, policy, remaining, flow)]
    st = state(store, policy)
    sel = st.selection
    if sel.audit_size == 0:
        head = f"auto-accept: {sel.why}"
    elif not sel.ready:
        head = f"auto-accept: waits for {len(st.asked)} blind audits ({sel.calibration} of {sel.audit_size} answered)"
    else:
        head = f"auto-accept: {sel.accepted} faces selected ({sel.why}); estimated precision {_pct(sel.estimate)}"
    return [head, next_step(st, policy, remaining, flow)]
