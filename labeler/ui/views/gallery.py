"""Gallery: the faces accepted as one class (auto, human or both; or every face), a page of crops at
a time, filtered by cleaning flag (text, non-photo, near copy) and sortable by non-photo score or
"suspicious labels first" (label-issue score, ``labeler.quality``; the class the model prefers shown), and
a bulk relabel of the ticked ones (one annotation per face, by the annotator). With the near-copy
filter, the near-duplicate face groups are listed too, each with one decision for the whole group."""

from __future__ import annotations

import streamlit as st

from labeler import store as S
from labeler.store.cleanview import ANY, FLAGS, NONPHOTO_THRESHOLD, SORTS
from labeler.types import LABELS
from labeler.ui.resources import db_url, issue_scores, labels_changed, store
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
    labels_changed()
    for fid in ids:
        st.session_state[f"g_{fid}"] = False
    flash(f"{len(ids)} faces: {action} {' + '.join(labs or [])}")


FLAG_NAMES = {"none": "no filter", "text": "text on/by the face", "nonphoto": "non-photo", "near_dup": "has a near copy"}
SORT_NAMES = {"face": "face id", "nonphoto": "non-photo score", "suspicious": "suspicious labels first"}


def _page_of(db: S.Store, cls: str, kind: str, flag: str, sort: str, page_box) -> tuple[int, list]:
    pg = int(st.session_state.get("g_page", 1) or 1)
    issues = None
    if sort == "suspicious":
        issues = issue_scores(db_url())
        if issues is None:
            st.warning("Scoring labels needs the quality extra: pip install 'labeler[quality]'. Sorted by face id.")
            sort = "face"
    total, items = S.gallery_page(db, cls, kind, flag, sort, limit=PER_PAGE, offset=(pg - 1) * PER_PAGE, issues=issues)
    pages = max(1, (total + PER_PAGE - 1) // PER_PAGE)
    if pg > pages:  # the class shrank (or changed) under the page number
        st.session_state["g_page"] = pg = pages
        total, items = S.gallery_page(db, cls, kind, flag, sort, limit=PER_PAGE, offset=(pg - 1) * PER_PAGE, issues=issues)
    page_box.number_input(f"Page (of {pages})", min_value=1, max_value=pages, key="g_page")
    return total, items


def _grid(items: list) -> None:
    for i in range(0, len(items), COLUMNS):
        for col, it in zip(st.columns(COLUMNS), items[i : i + COLUMNS]):
            if it.crop:
                col.image(it.crop, width=96)
            col.checkbox(f"#{it.face_id} {it.kind or it.label or ''}", key=f"g_{it.face_id}")
            marks = (["text"] if it.text_near else []) + ([f"non-photo {it.nonphoto:.2f}"] if it.nonphoto is not None else [])
            if it.issue is not None:
                marks.append(f"issue {it.issue:.2f} → {it.suggested}")
            if marks:
                col.caption(" · ".join(marks))


def render() -> None:
    db = store()
    st.subheader("Gallery")
    a, b, f, o, c = st.columns([1, 1, 1, 1, 1])
    cls = a.selectbox("Class", list(LABELS) + ["unusable", ANY], key="g_class",
                      format_func=lambda x: "any face" if x == ANY else x)
    kind = b.radio("Accepted by", ["all", "auto", "human"], key="g_kind", horizontal=True)
    flag = f.selectbox("Flag", FLAGS, key="g_flag", format_func=FLAG_NAMES.get)
    sort = o.selectbox("Sort by", SORTS, key="g_sort", format_func=SORT_NAMES.get)
    total, items = _page_of(db, cls, kind, flag, sort, c)
    msg = take_flash()
    what = "faces" if cls == ANY else f"faces accepted as **{cls}** ({kind})"
    st.caption(f"{total} {what}" + (f", {FLAG_NAMES[flag]}" if flag != "none" else "") + (f" · last: {msg}" if msg else ""))
    st.session_state["g_ids"] = [it.face_id for it in items]
    if any(it.nonphoto is not None or it.text_near for it in items):
        st.caption("Under a face: **text** = text on or beside it; **non-photo** = how much the image looks like a "
                   f"cartoon, emoji, drawing or figure grid rather than a photo (0 to 1; flagged from {NONPHOTO_THRESHOLD}).")
    _grid(items)
    if flag == "near_dup":
        _face_groups(db)
    if not items:
        st.info("No faces here.")
        return
    st.markdown("**Relabel the selected faces** (each becomes an annotation by you)")
    r = st.columns([1, 1, 1, 1])
    r[0].selectbox("New label", list(LABELS), key="g_new")
    r[1].selectbox("Second label (optional)", [None] + list(LABELS), key="g_new2", format_func=lambda x: "-" if x is None else x)
    r[2].button("Relabel selected", key="g_relabel", on_click=relabel_selected, args=("g_ids", "label"), type="primary")
    r[3].button("Mark selected unusable", key="g_unusable", on_click=relabel_selected, args=("g_ids", "unusable"))


def label_group(face_ids: tuple[int, ...], key: str) -> None:
    """One decision for a near-duplicate face group: an annotation per face, by the annotator."""
    lab = st.session_state.get(key)
    if not lab or not who():
        flash("no label or no annotator")
        return
    action, labs = ("unusable", None) if lab == "unusable" else ("label", [lab])
    S.add_annotations(store(), [(fid, action, labs) for fid in face_ids], who(), source=SOURCE)
    labels_changed()
    flash(f"near-duplicate group of {len(face_ids)} faces: {lab}")


def _face_groups(db: S.Store, limit: int = 20) -> None:
    groups = S.face_groups(db)
    st.markdown(f"**Near-duplicate face groups** ({len(groups)}): one face seen in near copies of one photo")
    for g in groups[:limit]:
        cols = st.columns([3, 1, 1])
        with cols[0]:
            crops = S.face_crops(db, list(g.face_ids))
            st.image([crops[f] for f in g.face_ids if crops.get(f)], width=72,
                     caption=[f"#{f}" for f in g.face_ids if crops.get(f)])
        key = f"grp_{g.face_ids[0]}"
        cols[1].selectbox("Label for the group", list(LABELS) + ["unusable"], key=key)
        cols[2].button(f"Apply to {len(g.face_ids)} faces", key=f"{key}_go", on_click=label_group, args=(g.face_ids, key))
