"""Image: one photo with its faces numbered in reading order, labeled a page of ``PER_PAGE`` faces
at a time from the keyboard (1-7 label the face under the cursor and move on, X unusable, arrows
move, N / P next / previous page, G next photo with faces to review). Opens on the photo the
annotator came from (the review card's "Open image view"), else the next one with pending faces."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from labeler import store as S
from labeler.active import reading_order
from labeler.store import grid as G
from labeler.types import LABELS
from labeler.ui.resources import boxed_image, store
from labeler.ui.state import SOURCE, flash, take_flash, who

TITLE = "Image"
ICON = ":material/photo:"
PER_PAGE = 12
#: the longest side the photo is drawn at (shown at its column's width)
PHOTO_SIDE = 1200
KEYS = {lab: str(i + 1) for i, lab in enumerate(LABELS)}
KEYS_HELP = (("1-7", "label the face under the cursor, then move to the next"), ("X", "unusable"),
             ("← →", "move the cursor"), ("N / P", f"next / previous {PER_PAGE} faces"),
             ("G", "next photo with faces to review"))


def _set(key: str, value: Any) -> None:
    st.session_state[key] = value


def label_face(face_id: int, action: str, labels, n: int) -> None:
    """Label the face under the cursor and move the cursor on (to the next page at its end)."""
    if not who():
        return
    S.add_annotation(store(), face_id, who(), action, labels, source=SOURCE)
    cur = st.session_state.get("im_cur", 0)
    st.session_state["im_cur"] = min(n - 1, cur + 1)
    flash(f"face #{face_id}: {action}" + (f" {labels[0]}" if labels else ""))


def move(delta: int, n: int) -> None:
    st.session_state["im_cur"] = max(0, min(n - 1, st.session_state.get("im_cur", 0) + delta))


def page_to(delta: int, n: int) -> None:
    cur = st.session_state.get("im_cur", 0)
    st.session_state["im_cur"] = max(0, min(n - 1, (cur // PER_PAGE + delta) * PER_PAGE))


def next_photo() -> None:
    nxt = G.next_pending_image(store(), who(), after=st.session_state.get("image_id"))
    if nxt is not None:
        st.session_state["image_id"] = nxt
    else:
        flash("no photo has faces to review")


def _pick_image(db: S.Store, imgs: list[dict[str, Any]]) -> int:
    """The image chooser: opens on the photo asked for (the review card's), else the next one with
    faces to review; kept even when the list (e.g. group photos only) does not hold it."""
    ids = [i["image_id"] for i in imgs]
    cur = st.session_state.get("image_id")
    if cur is None:
        cur = G.next_pending_image(db, who())
        st.session_state["image_id"] = cur if cur is not None else ids[0]
        cur = st.session_state["image_id"]
    if cur not in ids:
        if S.image_view(db, cur):
            ids = [cur] + ids
        else:
            st.session_state["image_id"] = ids[0]
    if st.session_state.get("im_shown") != st.session_state["image_id"]:  # another photo: cursor to its first face
        st.session_state["im_shown"] = st.session_state["image_id"]
        st.session_state["im_cur"] = 0
    info = {i["image_id"]: i for i in imgs}
    return st.selectbox("Image", ids, key="image_id",
                        format_func=lambda i: f"#{i} · {info[i]['n_faces']} faces · {os.path.basename(info[i]['path'])}" if i in info else f"#{i}")


def _photo(v: dict[str, Any], faces: list[dict[str, Any]], page: list[dict[str, Any]], cur_id: int) -> None:
    """The photo as wide as its column: this page's faces numbered in red, the one under the cursor
    in yellow, the other faces grey and unnumbered (a crowd's numbers would overlap)."""
    boxes = tuple((f["face_id"], *f["box"], str(f["n"])) for f in faces)
    img = boxed_image(tuple(v["paths"]), boxes, tuple(f["face_id"] for f in page), PHOTO_SIDE, cur_id)
    if img:
        st.image(img, width="stretch")
        st.caption("yellow: the face under the cursor · red: the faces of this page, numbered · grey: the other faces")
    else:
        st.caption("image file not found")
    st.caption(" · ".join(v["paths"][:3]) + (f" · rule: {v['rule_state']} {v['rule_label'] or ''}" if v["rule_state"] != "none" else ""))


def _tiles(page: list[dict[str, Any]], cur_id: int) -> None:
    ncol = 3
    for i in range(0, len(page), ncol):
        for col, f in zip(st.columns(ncol), page[i : i + ncol]):
            if f["crop"]:
                col.image(f["crop"], width=96)
            num = f":red-background[**▶ {f['n']}**]" if f["face_id"] == cur_id else f"**{f['n']}**"
            col.markdown(f"{num} {f['label'] or '—'}  \n:gray[model {f['model_label'] or '-'} {f['model_prob'] or 0:.2f}]")


def _keys(f: dict[str, Any], n: int) -> None:
    fid = f["face_id"]
    for col, lab in zip(st.columns(len(LABELS)), LABELS):
        col.button(f"{KEYS[lab]} {lab}", key=f"im_lab_{lab}", shortcut=KEYS[lab], on_click=label_face, args=(fid, "label", [lab], n),
                   width="stretch")
    b = st.columns(6)
    b[0].button("Unusable", key="im_unusable", shortcut="X", on_click=label_face, args=(fid, "unusable", None, n), width="stretch")
    b[1].button("◀ Face", key="im_left", shortcut="Left", on_click=move, args=(-1, n), width="stretch")
    b[2].button("Face ▶", key="im_right", shortcut="Right", on_click=move, args=(1, n), width="stretch")
    b[3].button(f"Previous {PER_PAGE}", key="im_prev", shortcut="P", on_click=page_to, args=(-1, n), width="stretch")
    b[4].button(f"Next {PER_PAGE}", key="im_next", shortcut="N", on_click=page_to, args=(1, n), width="stretch")
    b[5].button("Next to do", key="im_next_photo", help="the next photo with faces to review", shortcut="G", on_click=next_photo, width="stretch")


def render() -> None:
    db = store()
    st.subheader("Image view")
    group = st.sidebar.checkbox("Group photos only (2+ faces)", key="im_group")
    imgs = S.image_list(db, min_faces=2 if group else 1, limit=500)
    if not imgs:
        st.info("No images with faces.")
        return
    v = S.image_view(db, _pick_image(db, imgs))
    if v is None:
        st.warning("image not found")
        return
    order = reading_order([(f["face_id"], *f["box"]) for f in v["faces"]])  # the review queue's order too
    rank = {fid: k for k, fid in enumerate(order)}
    faces = sorted(v["faces"], key=lambda f: rank[f["face_id"]])
    for k, f in enumerate(faces):
        f["n"] = k + 1
    n = len(faces)
    cur = min(st.session_state.get("im_cur", 0), n - 1)
    start = cur // PER_PAGE * PER_PAGE
    page = faces[start : start + PER_PAGE]
    msg = take_flash()
    st.caption(f"faces {start + 1}-{start + len(page)} of {n} (numbered in reading order) · cursor on face {cur + 1}"
               + (f" · last: {msg}" if msg else "") + " · press ? for the keys")
    left, right = st.columns([2, 1])  # the photo gets the room: a crowd's faces are small
    with left:
        _photo(v, faces, page, faces[cur]["face_id"])
    with right:
        _tiles(page, faces[cur]["face_id"])
    _keys(faces[cur], n)
