"""Image: every face of one photo on the photo itself, labeled together (one annotation per face
whose choice is not "(keep)")."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from labeler import store as S
from labeler.types import LABELS
from labeler.ui.resources import boxed_image, store
from labeler.ui.state import SOURCE, flash, take_flash, who

TITLE = "Image"
ICON = ":material/photo:"
KEEP = "(keep)"
CHOICES = [KEEP] + list(LABELS) + ["unusable"]


def save_image_labels(face_ids: list[int]) -> None:
    items = []
    for fid in face_ids:
        v = st.session_state.get(f"im_{fid}")
        if not v or v == KEEP:
            continue
        items.append((fid, "unusable", None) if v == "unusable" else (fid, "label", [v]))
    if items and who():
        S.add_annotations(store(), items, who(), source=SOURCE)
        for fid in face_ids:
            st.session_state[f"im_{fid}"] = KEEP
        flash(f"saved {len(items)} face labels")
    else:
        flash("nothing to save")


def set_all_faces(face_ids: list[int]) -> None:
    v = st.session_state.get("im_all")
    for fid in face_ids:
        st.session_state[f"im_{fid}"] = v


def _pick_image(db: S.Store, imgs: list[dict[str, Any]]) -> int:
    """The image chooser; an image opened from elsewhere (the review card) is kept even when the
    list (e.g. group photos only) does not hold it."""
    ids = [i["image_id"] for i in imgs]
    cur = st.session_state.get("image_id")
    if cur not in ids:
        if cur is not None and S.image_view(db, cur):
            ids = [cur] + ids
        else:
            st.session_state["image_id"] = ids[0]
    info = {i["image_id"]: i for i in imgs}
    return st.selectbox("Image", ids, key="image_id",
                        format_func=lambda i: f"#{i} · {info[i]['n_faces']} faces · {os.path.basename(info[i]['path'])}" if i in info else f"#{i}")


def _photo(v: dict[str, Any]) -> None:
    boxes = tuple((f["face_id"], *f["box"], f"{f['idx'] + 1}: {f['label'] or '?'}") for f in v["faces"])
    img = boxed_image(tuple(v["paths"]), boxes, None, 900)
    if img:
        st.image(img, width=720)
    else:
        st.caption("image file not found")
    st.caption(" · ".join(v["paths"][:3]) + (f" · rule: {v['rule_state']} {v['rule_label'] or ''}" if v["rule_state"] != "none" else ""))


def _faces(faces: list[dict[str, Any]]) -> None:
    ncol = min(6, max(1, len(faces)))
    for i in range(0, len(faces), ncol):
        for col, f in zip(st.columns(ncol), faces[i : i + ncol]):
            if f["crop"]:
                col.image(f["crop"], width=112)
            col.markdown(f"**{f['idx'] + 1}** · #{f['face_id']}  \n{f['label'] or '—'} ({f['label_source']})  \n"
                         f"model {f['model_label'] or '-'} {f['model_prob'] or 0:.2f}")
            col.selectbox("label", CHOICES, key=f"im_{f['face_id']}", label_visibility="collapsed")


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
    msg = take_flash()
    if msg:
        st.caption(f"last: {msg}")
    _photo(v)
    _faces(v["faces"])
    fids = [f["face_id"] for f in v["faces"]]
    a, b, c = st.columns([1, 1, 1])
    a.selectbox("Set every face to", CHOICES[1:], key="im_all")
    b.button("Apply to all faces", key="im_apply_all", on_click=set_all_faces, args=(fids,))
    c.button("Save labels for this image", key="im_save", on_click=save_image_labels, args=(fids,), type="primary")
