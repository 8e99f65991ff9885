"""Text of the label-quality figures: the lines of `labeler issues` (the most suspicious labels)
and the label-quality block of `labeler status` (issues, agreement, consensus, annotators).
Formatting only: the figures are ``labeler.quality``'s."""

from __future__ import annotations

from typing import Optional, Sequence

from labeler.errors import LabelerError
from labeler.quality import INSTALL, LABEL_KINDS, Assessment, FaceIssue, missing, require


def _f(x: Optional[float], nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _alpha(e) -> str:
    return f"{_f(e.alpha)} [{_f(e.lower)}, {_f(e.upper)}]"


def header(a: Assessment) -> str:
    return (f"label issues: {len(a.issues)} labels scored ({a.method}), {a.flagged} flagged by confident learning, "
            f"{a.unscored} without out-of-sample model probabilities")


def issue_lines(a: Assessment, rows: Sequence[FaceIssue], names: dict[int, str]) -> list[str]:
    """The table of `labeler issues`: one line per face, most suspicious first."""
    out = [header(a), f"{'score':>6s} {'CL':3s} {'face':>7s}  {'label (from)':24s} {'model prefers':18s} image"]
    for x in rows:
        flag = "-" if x.flagged is None else ("yes" if x.flagged else "no")
        given = f"{x.label} ({x.kind})"
        pref = f"{x.suggested} {x.suggested_prob:.2f}" + ("*" if x.fallback else "")
        out.append(f"{x.score:6.3f} {flag:3s} {x.face_id:7d}  {given:24s} {pref:18s} {names.get(x.face_id, '')}")
    if any(x.fallback for x in rows):
        out.append("* the newest model learned this label: an earlier model's probabilities are used")
    if not a.issues:
        out.append("(no labeled face with out-of-sample model probabilities)")
    return out


def agreement_lines(a: Assessment, pairs: int = 6) -> list[str]:
    """Agreement, consensus and annotators, a few lines."""
    g = a.agreement
    out = []
    if g is None:
        out.append("agreement: no face rated by two annotators yet")
    else:
        out.append(f"agreement: {g.faces} faces rated by two or more of {g.annotators} annotators; Krippendorff's alpha "
                   f"nominal {_alpha(g.nominal)}, weighted by label distance {_alpha(g.weighted)} (95% bootstrap intervals)")
        out.append("  Cohen's kappa per class: " + ", ".join(f"{c.label} {_f(c.kappa, 2)}" for c in g.per_class))
        if g.pairs:
            more = f" (+{len(g.pairs) - pairs} more pairs)" if len(g.pairs) > pairs else ""
            out.append("  Cohen's kappa per pair: " + ", ".join(f"{p.a}~{p.b} {_f(p.kappa, 2)} ({p.faces})" for p in g.pairs[:pairs]) + more)
    methods = sorted({c.method for c in a.consensus.values()})
    if a.consensus:
        out.append(f"consensus ({', '.join(methods)}): {len(a.consensus)} faces, {a.consensus_changes} differ from their majority label")
    skilled = [s for s in a.skills if s.accuracy is not None]
    if skilled:
        out.append("  estimated annotator accuracy: " + ", ".join(f"{s.annotator} {s.accuracy:.2f} ({s.faces})" for s in skilled[:12]))
    if a.votes:
        out.append(f"vote distributions imported for {len(a.votes)} faces")
    return out


def status_lines(store) -> list[str]:
    """The label-quality block of `labeler status`: agreement and consensus where two annotators
    rated a face (the crowd model and kappa take seconds to import: only then), and how many labels
    `labeler issues` can rank."""
    from labeler.quality.assessment import assess, rated_twice
    from labeler.store import quality_inputs

    inputs = quality_inputs(store)
    ready = sum(1 for g in inputs.given if g.probs is not None)
    head = f"label issues: `labeler issues` ranks the {ready} labeled faces with out-of-sample model probabilities"
    if not rated_twice(inputs):
        return [head, "agreement: no face rated by two annotators yet"]
    gone = missing()
    if gone:
        return [head, f"agreement and consensus: not computed ({', '.join(gone)} missing: {INSTALL})"]
    return [head, *agreement_lines(assess(inputs, issues=False))]


def issues_report(store, method: str, kinds: Optional[str], flagged: bool, limit: int) -> list[str]:
    """`labeler issues`: the ``limit`` most suspicious labels (of ``kinds``, comma-separated; only
    confident learning's issues with ``flagged``), then agreement and consensus."""
    from labeler.store import assess_project, face_names

    wanted = tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else None
    bad = [k for k in wanted or () if k not in LABEL_KINDS]
    if bad or wanted == ():
        raise LabelerError(f"--kind: expected a comma-separated list of {', '.join(LABEL_KINDS)}, found {kinds!r}")
    if limit < 0:
        raise LabelerError(f"--limit: expected 0 or more faces, found {limit}")
    require()
    a = assess_project(store, method=method)
    rows = [x for x in a.ranked(wanted) if x.flagged or not flagged][:limit]
    return [*issue_lines(a, rows, face_names(store, [x.face_id for x in rows])), "", *agreement_lines(a)]
