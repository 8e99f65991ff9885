"""Overview: progress, the class distribution of the accepted labels, rule/model/human agreement,
what each annotator did, how much annotators agree with each other (Krippendorff's alpha, Cohen's
kappa) and their Dawid-Skene consensus, and the button that retrains the classification head. The numbers come
from ``labeler.reports.progress``; this page only lays them out."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pandas as pd
import streamlit as st

from labeler import store as S
from labeler.reports import progress as P
from labeler.ui import report_panel
from labeler.ui.resources import db_url, label_quality, policy, store

TITLE = "Overview"
ICON = ":material/monitoring:"
CONFUSION_CHOICES = ["model vs human", "rule vs model", "rule vs human"]


def _metrics(p: P.Progress) -> None:
    m = st.columns(6)
    m[0].metric("Faces", p.faces)
    m[1].metric("Auto-accepted", p.auto_accepted)
    m[2].metric("Reviewed", p.reviewed)
    m[3].metric("Remaining", p.remaining, help="routed to review, no human label yet")
    m[4].metric("No face (images)", p.no_face_images)
    m[5].metric("Broken (images)", p.broken_images)
    st.progress(p.fraction, text=f"{p.labeled} of {p.faces} faces have a label")
    if p.tracked:  # not in "Remaining": say where they are
        st.caption(f"{p.tracked} faces of video frames are labeled per track, on the Tracks page (not in Remaining).")
    if p.pending:
        st.caption(f"{p.pending} faces have no routing decision yet (an interrupted run: `labeler route` routes them).")


def _progress_and_classes(p: P.Progress, data: S.OverviewData) -> None:
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Progress**")
        prog = pd.DataFrame({"faces": [p.auto_accepted, p.reviewed, p.remaining, p.pending]},
                            index=["auto-accepted", "reviewed", "remaining", "pending"])
        st.bar_chart(prog, horizontal=True)
    with c2:
        st.markdown("**Class distribution (accepted labels)**")
        dist = P.class_distribution(data.faces)
        if dist:
            st.bar_chart(pd.DataFrame(dist).T, stack=True)
        else:
            st.caption("no accepted labels yet")


def _auto_accept(db: S.Store) -> None:
    """Where auto-accept stands: the audit sample, the selection, its guarantee and estimates, and the
    next step (the same lines as `labeler status`, ``labeler.reports.autoaccept``)."""
    from labeler.reports.autoaccept import selection_lines, state

    pol = policy()
    st_ = state(db, pol)
    st.markdown("**Auto-accept**")
    c = st.columns(4)
    c[0].metric("Audits answered", f"{st_.selection.calibration} / {st_.selection.audit_size}")
    c[1].metric("Selected by the audits", st_.selection.accepted, help="candidate faces the conformal selection accepts now")
    e, d = st_.selection.estimate, st_.data_set()
    c[2].metric("Est. precision (auto)", "-" if e.precision is None else f"{e.precision:.1%}",
                help=None if e.precision is None else f"one-sided 95% bounds {e.lower:.1%} .. {e.upper:.1%}; {e.how}")
    c[3].metric("Est. accuracy (data set)", "-" if d.precision is None else f"{d.precision:.1%}",
                help=None if d.precision is None else f"bounds {d.lower:.1%} .. {d.upper:.1%}; {d.how}")
    st.caption("\n\n".join(ln.strip() for ln in selection_lines(st_, pol)[1:]))


def _agreement(data: S.OverviewData) -> None:
    st.markdown("**Agreement** (per face; rule = filename keyword given to the face)")
    rates = P.agreement(data.faces)
    rate_df = pd.DataFrame({"agreement": [r.rate for r in rates], "faces compared": [r.n for r in rates]},
                           index=[f"{r.a} = {r.b}" for r in rates])
    a1, a2 = st.columns([1, 2])
    with a1:
        st.bar_chart(rate_df[["agreement"]])
        st.dataframe(rate_df, width="stretch")
    with a2:
        pair = st.radio("Confusion table", CONFUSION_CHOICES, key="ov_pair", horizontal=True)
        x, y = pair.split(" vs ")
        table = P.confusion(data.faces, x, y)
        if table:
            df = pd.DataFrame(table).T
            df.index.name, df.columns.name = x, y
            st.dataframe(df, width="stretch")
        else:
            st.caption("no faces with both")


def _annotators(data: S.OverviewData) -> None:
    st.markdown("**Annotators**")
    table = P.annotator_table(data.actions, dict(data.current_labels))
    if not table:
        st.caption("no annotations yet")
        return
    df = pd.DataFrame(table).T
    df.index.name = "annotator"
    b1, b2 = st.columns([2, 1])
    b1.bar_chart(df.drop(columns=["current labels"]), stack=True)
    b2.dataframe(df, width="stretch")


def _alpha(e) -> str:
    return "-" if e.alpha is None else f"{e.alpha:.3f} [{e.lower or 0:.3f}, {e.upper or 0:.3f}]"


def _inter_annotator() -> None:
    """Agreement between annotators and their consensus (``labeler.quality``)."""
    st.markdown("**Agreement between annotators and consensus**")
    a = label_quality(db_url())
    if a is None:
        st.caption("needs the quality extra: pip install 'labeler[quality]'")
        return
    g = a.agreement
    if g is None:
        st.caption("no face rated by two annotators yet (LABELER_ANNOTATORS_PER_FACE=2 asks for second opinions)")
        return
    m = st.columns(4)
    m[0].metric("Faces rated twice or more", g.faces)
    m[1].metric("Alpha (nominal)", "-" if g.nominal.alpha is None else f"{g.nominal.alpha:.3f}",
                help=f"Krippendorff's alpha, 95% bootstrap interval {_alpha(g.nominal)}")
    m[2].metric("Alpha (label distance)", "-" if g.weighted.alpha is None else f"{g.weighted.alpha:.3f}",
                help=f"weighted by how often the FER+ crowd confuses two classes; interval {_alpha(g.weighted)}")
    m[3].metric("Consensus differs from majority", a.consensus_changes, help="Dawid-Skene consensus vs the majority vote")
    k1, k2 = st.columns(2)
    with k1:
        st.caption("Cohen's kappa per class (one class against the rest)")
        st.bar_chart(pd.DataFrame({"kappa": {c.label: c.kappa for c in g.per_class if c.kappa is not None}}))
    with k2:
        st.caption("Cohen's kappa per annotator pair, and each annotator's estimated accuracy (Dawid-Skene)")
        st.dataframe(pd.DataFrame([{"pair": f"{p.a} ~ {p.b}", "kappa": p.kappa, "faces": p.faces} for p in g.pairs]),
                     width="stretch", hide_index=True)
        st.dataframe(pd.DataFrame([{"annotator": s.annotator, "accuracy": s.accuracy, "faces": s.faces} for s in a.skills]),
                     width="stretch", hide_index=True)


def _as_json(res: Any) -> Any:
    data = dataclasses.asdict(res) if dataclasses.is_dataclass(res) and not isinstance(res, type) else res
    return json.loads(json.dumps(data, default=str))


def training_panel(db: S.Store) -> None:
    """Retrain the classification head on the human labels (``labeler.training.train``)."""
    st.subheader("Retrain the classification head")
    st.caption("Trains a new head on the human labels; it becomes the default model only if it is significantly better "
               "on held-out faces and nothing gets significantly worse (the project's classes, the base model's own domain).")
    if not st.button("Train head now", key="train_head"):
        return
    from labeler.training import train  # at call time: the page stays light

    with st.spinner("training..."):
        try:
            res = train(db, "head")
        except Exception as e:  # noqa: BLE001 - show the failure (LabelerError: one line), keep the app alive
            st.error(f"training failed: {e}")
            return
    st.success(f"new model {res.ident}: " + ("now the default" if res.promoted else "not made the default")
               + f" ({res.reason})")
    st.json(_as_json(res))


def render() -> None:
    db = store()
    data = S.overview_stats(db)
    p = P.progress(data)
    st.subheader("Overview")
    _metrics(p)
    _auto_accept(db)
    _progress_and_classes(p, data)
    _agreement(data)
    _annotators(data)
    _inter_annotator()
    report_panel.render(data.n_faces)
    training_panel(db)
