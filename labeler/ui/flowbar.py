"""The review flow's next steps, on top of the Review page: "next: 2 grid pages of happy, then 41
cards (about 3 min)" (``labeler.flow.plan``, priced with the project's measured seconds:
``labeler.reports.effort``), with a button to the Verify page when a grid page comes first. Grid
pages before cards: a glance per likely-right face costs less than a card."""

from __future__ import annotations

import streamlit as st

from labeler.store import status_counts
from labeler.ui.resources import db_url, policy, store
from labeler.ui.state import goto

#: above this many faces the plan (a read of every face) is left to `labeler status` and the Overview
MAX_FACES = 20_000


@st.cache_data(ttl=60, show_spinner=False)
def _plan(url: str, tick: int) -> tuple[str, list[tuple[str, str, int]]]:
    """(the flow in words, [(kind, class, pages) of its steps]); ``tick`` moves with the decisions."""
    from labeler.reports.effort import effort

    e = effort(store(), policy())
    steps = [(s.kind, s.label or "", s.pages) for s in e.steps]
    return e.next_steps, steps


def _to_verify(label: str) -> None:
    st.session_state["grid_class"] = label
    goto("Verify")


def flow_bar() -> None:
    """One line (and a Verify button when a grid page comes first); nothing on a very large project."""
    if status_counts(store()).get("faces", 0) > MAX_FACES:
        return
    c = status_counts(store())
    labeled = c.get("human_labeled_faces", 0)  # the plan is read again as people label (every 25 on a big project)
    words, steps = _plan(db_url(), labeled if c.get("faces", 0) < 2_000 else labeled // 25)
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.caption(f"**Flow** · {words}")
    first = next((s for s in steps if s[0] != "audit"), None)
    if first is not None and first[0] == "grid" and (not steps or steps[0][0] != "audit"):
        right.button(f"Verify: {first[1]}", key="flow_verify", on_click=_to_verify, args=(first[1],),
                     help="Grid pages of faces whose proposal is likely right cost a glance each: do them before the cards.")


def retrain_when_due() -> None:
    """Every ``LABELER_RETRAIN_EVERY`` (100) new human labels, a retraining starts in its own process
    (``labeler.training.background``); the sidebar says what the last one did."""
    from labeler.training import background as B

    db = store()
    if B.due(db):
        B.start(db, db_url())
    st_ = B.state(db)
    if st_.get("state") == "running":
        st.sidebar.caption("Retraining in the background on the new labels ...")
    elif st_.get("state") == "done":
        st.sidebar.caption(f"Last retraining: {st_.get('model')} "
                           + ("promoted, faces proposed again" if st_.get("promoted") else "kept the current model"))
