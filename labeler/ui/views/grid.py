"""Verify: a page of 30-60 faces proposed as one class; mark only the wrong ones (click, or arrows
and space), Enter confirms the page. Unmarked faces get the class as a human label (``verify``);
marked ones go back to single review, "rejected as <class>". U undoes the last page. The queries
are ``labeler.store.grid``'s; the keys live in the browser (``labeler.ui.keys.face_grid``)."""

from __future__ import annotations

import functools
import time
import uuid

import streamlit as st

from labeler.flow import TimeModel
from labeler.store import grid as G
from labeler.ui.keys import face_grid
from labeler.ui.resources import store
from labeler.ui.state import flash, take_flash, who

TITLE = "Verify"
ICON = ":material/grid_view:"
KEYS_HELP = (("arrows", "move the cursor"), ("space / click", "mark the face as wrong (again: unmark)"),
             ("Enter", "confirm the page: unmarked faces get the class, marked ones go back to review"),
             ("U", "undo my last grid page"))
SOURCES = {"review": "review queue", "auto": "auto-accepted"}
SIZE = 112  # crop side on screen, px
COLS = 8
#: the probability from which a grid glance costs less than a card (labeler.flow.TimeModel)
GRID_P = TimeModel().grid_threshold()


def undo_page() -> None:
    r = G.undo_grid(store(), who())
    st.session_state.pop("grid_page", None)
    if r is not None:  # back to the class of the page undone
        st.session_state["grid_class"] = r.label
    flash("no grid page to undo" if r is None else
          f"undid the {r.label} page: {len(r.verified)} verified, {len(r.rejected)} rejected faces are back")


def _page(label: str, source: str, n: int) -> tuple[str, list[G.GridFace]]:
    """The page shown: kept across reruns until it is confirmed (or the class/source changes)."""
    cur = st.session_state.get("grid_page")
    if cur and cur[1] == (label, source, n, who(), st.session_state.get("grid_min_prob")):
        return cur[0], cur[2]
    faces = G.grid_page(store(), label, source, who(), n, min_prob=st.session_state.get("grid_min_prob"))
    token = uuid.uuid4().hex[:10]
    st.session_state["grid_page"] = (token, (label, source, n, who(), st.session_state.get("grid_min_prob")), faces)
    st.session_state["grid_shown_at"] = time.monotonic()  # the page's time counts from here
    return token, faces


def _on_confirm(token: str, label: str, faces: list[G.GridFace]) -> None:
    """Enter on the page ``token`` (a callback: it runs before the script, which then draws the next
    page in the same run)."""
    got = (st.session_state.get(f"grid_{token}") or {}).get("confirm")
    if isinstance(got, dict) and got.get("page") == token:
        shown = {f.face_id for f in faces}
        _settle(token, label, faces, [int(m) for m in got.get("marked") or [] if int(m) in shown])


def _settle(token: str, label: str, faces: list[G.GridFace], marked: list[int]) -> None:
    done = st.session_state.setdefault("grid_done", set())
    if token in done:  # (a page is settled once)
        return
    done.add(token)
    t0 = st.session_state.get("grid_shown_at")
    r = G.settle_grid(store(), who(), label, [f.face_id for f in faces], marked,
                      seconds=None if t0 is None else time.monotonic() - t0)
    st.session_state.pop("grid_page", None)
    st.session_state["grid_n_done"] = st.session_state.get("grid_n_done", 0) + len(faces)
    flash(f"{label} page: {len(r.verified)} verified, {len(r.rejected)} sent back to review")


def render() -> None:
    from labeler.ui.flowbar import retrain_when_due

    db = store()
    sb = st.sidebar
    retrain_when_due()
    source = sb.radio("Faces from", list(SOURCES), format_func=SOURCES.get, key="grid_source")
    n = sb.slider("Faces per page", 30, 60, 48, step=6, key="grid_n")
    pays = sb.toggle("Only faces a grid pays for", value=st.query_params.get("pays") != "0", key="grid_pays",
                     help=f"Faces the model gives the class at {GRID_P:.2f} or more: below that a card costs less "
                          "than a glance plus the mark and the card a wrong face needs (labeler.flow)")
    st.session_state["grid_min_prob"] = GRID_P if pays else None
    classes = G.grid_classes(db, source, who())
    st.subheader("Verify by grid")
    msg = take_flash()
    st.caption(f"{st.session_state.get('grid_n_done', 0)} faces settled on grids this session"
               + (f" · last: {msg}" if msg else "") + " · press ? for the keys")
    if not classes:
        st.success(f"No face of the {SOURCES[source]} waits for a grid.")
        st.button("Undo my last grid page", key="grid_undo", shortcut="U", on_click=undo_page)
        return
    counts = {c.label: c.faces for c in classes}
    if st.session_state.get("grid_class") not in counts:  # the class with the most faces waiting
        st.session_state["grid_class"] = max(classes, key=lambda c: c.faces).label
    # the options are the class names only: a count in an option's text changes with every page, and
    # the browser then sends a value the new options lack, so the box fell back to another class
    label = st.selectbox("Class", list(counts), key="grid_class")
    token, faces = _page(label, source, n)
    if not faces and st.session_state.get("grid_min_prob") is not None:
        st.info(f"The {counts[label]} faces proposed as {label} are all below {GRID_P:.2f}: a card costs less for them "
                "(Review page). Untick 'Only faces a grid pays for' to verify them here anyway.")
    left, right = st.columns([4, 1], vertical_alignment="center")  # above the grid: both on screen without scrolling
    left.markdown(f"Mark the faces that are **not {label}** ({counts[label]} faces wait); Enter confirms the page.")
    right.button("Undo my last grid page", key="grid_undo", shortcut="U", on_click=undo_page, width="stretch")
    face_grid(token, label, [(f.face_id, f.crop, f"{f.prob:.2f}" if f.prob is not None else "") for f in faces],
              COLS, SIZE, on_confirm=functools.partial(_on_confirm, token, label, faces))
