"""Gallery: the faces accepted as one class (auto, human or both), a page of crops at a time, and
a bulk relabel of the ticked ones (one annotation per face, by the annotator)."""

from __future__ import annotations

import streamlit as st

from labeler import store as S
from labeler.types import LABELS
from labeler.ui.resources import store
from labeler.ui.state import SOURCE, flash, take_flash, who

TITLE = "Gallery"
ICON = ":material/grid_view:"
PER_PAGE = 48
COLUMNS = 8


def relabel_selected(ids_key: str, action: str) -> None:
    """Label (with the chosen one or two labels) or mark unusable every ticked face."""
    ids = [fid for fid in st.session_state.get(ids_key, []) if st.session_state.get(f"g_{fid}")]
    if not ids or not who():
        flash("nothing selected")
        return
    labs = [x for x in (st.session_state.get("g_new"), st.session_state.get("g_new2")) if x] if action == "label" else None
    if action == "label" and not labs:
        return
    S.add_annotations(store(), [(fid, action, labs) for fid in ids], who(), source=SOURCE)
    for fid in ids:
        st.session_state[f"g_{fid}"] = False
    flash(f"{len(ids)} faces: {action} {' + '.join(labs or [])}")


def _page_of(db: S.Store, cls: str, kind: str, page_box) -> tuple[int, list]:
    pg = int(st.session_state.get("g_page", 1) or 1)
    total, items = S.gallery_faces(db, cls, kind, limit=PER_PAGE, offset=(pg - 1) * PER_PAGE)
    pages = max(1, (total + PER_PAGE - 1) // PER_PAGE)
    if pg > pages:  # the class shrank (or changed) under the page number
        st.session_state["g_page"] = pg = pages
        total, items = S.gallery_faces(db, cls, kind, limit=PER_PAGE, offset=(pg - 1) * PER_PAGE)
    page_box.number_input(f"Page (of {pages})", min_value=1, max_value=pages, key="g_page")
    return total, items


def _grid(items: list) -> None:
    for i in range(0, len(items), COLUMNS):
        for col, it in zip(st.columns(COLUMNS), items[i : i + COLUMNS]):
            if it["crop"]:
                col.image(it["crop"], width=96)
            col.checkbox(f"#{it['face_id']} {it['kind']}", key=f"g_{it['face_id']}")


def render() -> None:
    db = store()
    st.subheader("Gallery")
    a, b, c = st.columns([1, 1, 1])
    cls = a.selectbox("Class", list(LABELS) + ["unusable"], key="g_class")
    kind = b.radio("Accepted by", ["all", "auto", "human"], key="g_kind", horizontal=True)
    total, items = _page_of(db, cls, kind, c)
    msg = take_flash()
    st.caption(f"{total} faces accepted as **{cls}** ({kind})" + (f" · last: {msg}" if msg else ""))
    st.session_state["g_ids"] = [it["face_id"] for it in items]
    _grid(items)
    if not items:
        st.info("No faces here.")
        return
    st.markdown("**Relabel the selected faces** (each becomes an annotation by you)")
    r = st.columns([1, 1, 1, 1])
    r[0].selectbox("New label", list(LABELS), key="g_new")
    r[1].selectbox("Second label (optional)", [None] + list(LABELS), key="g_new2", format_func=lambda x: "-" if x is None else x)
    r[2].button("Relabel selected", key="g_relabel", on_click=relabel_selected, args=("g_ids", "label"), type="primary")
    r[3].button("Mark selected unusable", key="g_unusable", on_click=relabel_selected, args=("g_ids", "unusable"))
