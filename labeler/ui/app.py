"""The review app (Streamlit): ``streamlit run labeler/ui.py -- --db URL`` or ``labeler ui``.

Pages: Review (one card at a time, keyboard driven), Gallery (faces per class, bulk relabel), Image
(all faces of one photo, labeled together) and Overview (progress, distributions, agreement).
Every human action is one append-only Annotation row (annotator, time, source "ui"); the model is
never called from here. All queries live in ``labeler.store`` (section "review UI queries").
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import json
import os
import sys
from typing import Any, Optional

import pandas as pd
import streamlit as st
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont, ImageOps

from labeler.store import core as S
from labeler.types import LABELS

PAGES = ("Review", "Gallery", "Image", "Overview")
KEYS = {lab: str(i + 1) for i, lab in enumerate(LABELS)}  # 1-7 in LABELS order
SOURCE = "ui"


# --------------------------------------------------------------------------------------------
# resources


def db_url() -> str:
    """``--db URL`` after the ``--`` of `streamlit run`, else LABELER_DB, else the default."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db", default=None)
    args, _ = p.parse_known_args(sys.argv[1:])
    return S.resolve_url(args.db)


@st.cache_resource(show_spinner=False)
def get_store(url: str) -> S.Store:
    return S.Store(url)


def store() -> S.Store:
    return get_store(db_url())


@st.cache_data(ttl=60, show_spinner=False)
def folders(url: str) -> list[tuple[str, int]]:
    return S.source_folders(get_store(url))


def _oriented_size(im: PILImage.Image) -> tuple[int, int]:
    w, h = im.size
    try:
        o = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF: treat as unrotated
        o = 1
    return (h, w) if o in (5, 6, 7, 8) else (w, h)


@st.cache_data(max_entries=256, show_spinner=False)
def boxed_image(paths: tuple[str, ...], boxes: tuple[tuple[int, float, float, float, float, str], ...],
                highlight: Optional[int], max_side: int) -> Optional[bytes]:
    """The image file (first readable path) downscaled to ``max_side`` with face boxes drawn
    (``boxes``: (face_id, x1, y1, x2, y2, caption) in EXIF-oriented pixels). JPEG bytes."""
    for p in paths:
        try:
            im = PILImage.open(p)
            full_w, _full_h = _oriented_size(im)
            if im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))  # decode at a reduced scale: fast for big photos
            im = ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError, SyntaxError):
            continue
        im.thumbnail((max_side, max_side))
        scale = im.width / max(full_w, 1)
        draw = ImageDraw.Draw(im)
        lw = max(2, im.width // 150)
        fs = max(11, im.width // 40)
        try:
            font = ImageFont.load_default(size=fs)
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        for fid, x1, y1, x2, y2, cap in boxes:
            on = highlight is None or fid == highlight
            color = (255, 40, 40) if (highlight is not None and on) else ((40, 220, 255) if on else (200, 200, 200))
            r = [x1 * scale, y1 * scale, x2 * scale, y2 * scale]
            draw.rectangle(r, outline=color, width=lw if on else max(1, lw // 2))
            if cap:
                tw = draw.textlength(cap, font=font)
                ty = max(0, r[1] - fs - 4)
                draw.rectangle([r[0], ty, r[0] + tw + 6, ty + fs + 4], fill=color)
                draw.text((r[0] + 3, ty + 1), cap, fill=(0, 0, 0), font=font)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        return buf.getvalue()
    return None


# --------------------------------------------------------------------------------------------
# actions (button callbacks: they run before the rerun, so the next card renders right away)


def _who() -> str:
    return st.session_state.get("annotator", "")


def _flash(msg: str) -> None:
    st.session_state["flash"] = msg


def act(face_id: int, action: str, labels: Optional[list[str]] = None) -> None:
    """Label / unusable / skip the face on the card. In two-label mode a label is held until the
    second one (or Enter) comes."""
    if not _who():
        return
    if face_id != st.session_state.get("card_face"):
        # a key pressed before the next card was on screen reached the old card's button: it was
        # meant for the next card, so it must not relabel this one; drop it and say so
        _flash(f"key press for face #{face_id} ignored: it came before the next card was shown; press it again")
        return
    if action == "label" and st.session_state.get("compound"):
        pend = st.session_state.get("pending") or (face_id, [])
        if pend[0] != face_id:
            pend = (face_id, [])
        labs = list(dict.fromkeys(pend[1] + list(labels or [])))
        if len(labs) < 2:
            st.session_state["pending"] = (face_id, labs)
            return
        labels = labs[:2]
    S.add_annotation(store(), face_id, _who(), action, labels, source=SOURCE)
    st.session_state["compound"] = False
    st.session_state["pending"] = None
    if st.session_state.get("focus_face") == face_id:
        st.session_state["focus_face"] = None
    st.session_state["n_done"] = st.session_state.get("n_done", 0) + 1
    _flash(f"face #{face_id}: {action}" + (f" {' + '.join(labels)}" if labels else ""))


def accept(face_id: int, suggestion: Optional[str]) -> None:
    pend = st.session_state.get("pending")
    if pend and pend[0] == face_id and pend[1]:
        st.session_state["compound"] = False
        act(face_id, "label", pend[1])
    elif suggestion:
        st.session_state["compound"] = False
        act(face_id, "label", [suggestion])


def toggle_compound() -> None:
    st.session_state["compound"] = not st.session_state.get("compound", False)
    st.session_state["pending"] = None


def cancel_compound() -> None:
    st.session_state["compound"] = False
    st.session_state["pending"] = None


def undo() -> None:
    if not _who():
        return
    r = S.undo_last(store(), _who(), source=SOURCE)
    if r is None:
        _flash("nothing to undo")
        return
    st.session_state["focus_face"] = r["face_id"]  # show the face again right away
    st.session_state["compound"] = False
    st.session_state["pending"] = None
    _flash(f"undid {r['action']} {' + '.join(r['labels'] or [])} on face #{r['face_id']}")


def open_image(image_id: int) -> None:
    st.session_state["image_id"] = image_id
    st.session_state["page"] = "Image"


def set_annotator() -> None:
    name = (st.session_state.get("name_input") or "").strip()
    if name:
        st.session_state["annotator"] = name


def change_annotator() -> None:
    st.session_state.pop("annotator", None)


# --------------------------------------------------------------------------------------------
# pages


def _bar(p: float, n: int = 20) -> str:
    k = int(round(max(0.0, min(1.0, p)) * n))
    return "█" * k + "·" * (n - k)


def _filters() -> dict[str, Any]:
    sb = st.sidebar
    sb.markdown("**Review filters**")
    kinds = sb.multiselect("Reason", list(S.REVIEW_REASON_KINDS), key="f_kinds")
    prop = sb.multiselect("Proposed class", list(LABELS), key="f_prop")
    fl = folders(db_url())
    opts = [""] + [f for f, _n in fl]
    counts = dict(fl)
    folder = sb.selectbox("Source folder", opts, key="f_folder",
                          format_func=lambda f: "(all folders)" if not f else f"{f} ({counts.get(f, 0)})")
    skipped = sb.checkbox("Include faces I skipped", key="f_skipped")
    return {"reason_kinds": kinds or None, "proposed": prop or None, "folder": folder or None, "include_skipped": skipped}


def page_review() -> None:
    db = store()
    who = _who()
    f = _filters()
    card = None
    focus = st.session_state.get("focus_face")
    if focus:
        c = S.face_card(db, focus)
        if c and c["route"] == "review" and c["human_label"] is None:
            card = c
        else:
            st.session_state["focus_face"] = None
    if card is None:
        ids = S.review_queue(db, who, limit=1, **f)
        card = S.face_card(db, ids[0]) if ids else None
    left = S.review_queue_count(db, who, **f)
    msg = st.session_state.pop("flash", None)
    st.caption(f"{left} to review with these filters · {st.session_state.get('n_done', 0)} done this session"
               + (f" · last: {msg}" if msg else ""))
    if card is None:
        st.success("Nothing left to review with these filters.")
        st.button("Undo my last action", key="undo", shortcut="U", on_click=undo)
        return
    fid = card["face_id"]
    suggestion = card["decision_label"] or card["model_label"]
    st.markdown(f"#### Face #{fid} · image #{card['image_id']} · face {card['idx'] + 1} of {card['n_faces']}")

    c1, c2, c3 = st.columns([1.1, 1.4, 1.2])
    with c1:
        if card["crop"]:
            st.image(card["crop"], width=260)
        else:
            st.warning("no crop stored")
    with c2:
        st.markdown(f"**Why review** ({card['reason_kind']}, priority {card['priority']:.2f})  \n{card['reason']}")
        words = [w for w, _c in card["rule_words"] if not w.startswith("!")]
        neg = [w[1:] for w, _c in card["rule_words"] if w.startswith("!")]
        rule = {"labeled": f"**{card['rule_label']}**", "ambiguous": "ambiguous", "none": "no keyword"}.get(card["rule_state"], card["rule_state"])
        st.markdown(f"**Rule:** {rule}" + (f" — words: {', '.join(f'`{w}`' for w in words)}" if words else "")
                    + (f" — negated: {', '.join(f'`{w}`' for w in neg)}" if neg else ""))
        top = sorted(card["model_probs"].items(), key=lambda kv: -kv[1])[:3]
        lines = "  \n".join(f"`{_bar(p, 14)}` {lab} {p:.2f}" for lab, p in top)
        st.markdown(f"**Model** ({card['model_source'] or '-'}):  \n{lines or 'no proposal'}")
        q = card["quality"]
        qtxt = ", ".join(f"{k} {v:.3g}" for k, v in q.items() if isinstance(v, (int, float)))
        flags = ", ".join(card["flags"]) or "none"
        st.markdown(f"**Quality:** flags: {flags}  \n{qtxt}")
        if card["annotations"]:
            st.markdown("**Others:** " + "; ".join(f"{n}: {a['action']} {' + '.join(a['labels'])}" for n, a in card["annotations"].items()))
    with c3:
        boxes = tuple((b["face_id"], *b["box"], str(b["idx"] + 1)) for b in card["faces"])
        img = boxed_image(tuple(card["paths"]), boxes, fid, 360)
        if img:
            st.image(img, width=320)
        else:
            st.caption("image file not found: " + (card["paths"][0] if card["paths"] else "-"))
        st.button("Open image view", key="open_img", on_click=open_image, args=(card["image_id"],))

    pend = st.session_state.get("pending")
    held = pend[1] if pend and pend[0] == fid else []
    if st.session_state.get("compound"):
        st.info("Two labels: press two class keys (or one, then Enter). Esc cancels."
                + (f" Held: **{' + '.join(held)}**" if held else ""))
    st.session_state["card_face"] = fid  # the face the buttons below act on (see act())
    cols = st.columns(len(LABELS))
    for col, lab in zip(cols, LABELS):
        col.button(lab, key=f"lab_{lab}", shortcut=KEYS[lab], on_click=act, args=(fid, "label", [lab]),
                   type="primary" if lab == suggestion or lab in held else "secondary", width="stretch")
    b = st.columns([1.6, 1.3, 1.1, 0.9, 0.9, 0.9])
    b[0].button(f"Accept: {suggestion or '-'}", key="accept", shortcut="Enter", on_click=accept, args=(fid, suggestion),
                disabled=not (suggestion or held), width="stretch")
    b[1].button("Second label", key="second", shortcut="A", on_click=toggle_compound, width="stretch",
                type="primary" if st.session_state.get("compound") else "secondary")
    b[2].button("Unusable", key="unusable", shortcut="X", on_click=act, args=(fid, "unusable"), width="stretch")
    b[3].button("Skip", key="skip", shortcut="S", on_click=act, args=(fid, "skip"), width="stretch")
    b[4].button("Undo", key="undo", shortcut="U", on_click=undo, width="stretch")
    b[5].button("Cancel", key="cancel", shortcut="Esc", on_click=cancel_compound, width="stretch",
                disabled=not st.session_state.get("compound"))


def relabel_selected(ids_key: str, action: str) -> None:
    ids = [fid for fid in st.session_state.get(ids_key, []) if st.session_state.get(f"g_{fid}")]
    if not ids or not _who():
        _flash("nothing selected")
        return
    labs = [x for x in (st.session_state.get("g_new"), st.session_state.get("g_new2")) if x] if action == "label" else None
    if action == "label" and not labs:
        return
    S.add_annotations(store(), [(fid, action, labs) for fid in ids], _who(), source=SOURCE)
    for fid in ids:
        st.session_state[f"g_{fid}"] = False
    _flash(f"{len(ids)} faces: {action} {' + '.join(labs or [])}")


def page_gallery() -> None:
    db = store()
    st.subheader("Gallery")
    a, b, c = st.columns([1, 1, 1])
    cls = a.selectbox("Class", list(LABELS) + ["unusable"], key="g_class")
    kind = b.radio("Accepted by", ["all", "auto", "human"], key="g_kind", horizontal=True)
    per = 48
    pg = int(st.session_state.get("g_page", 1) or 1)
    total, items = S.gallery_faces(db, cls, kind, limit=per, offset=(pg - 1) * per)
    pages = max(1, (total + per - 1) // per)
    if pg > pages:
        st.session_state["g_page"] = pg = pages
        total, items = S.gallery_faces(db, cls, kind, limit=per, offset=(pg - 1) * per)
    c.number_input(f"Page (of {pages})", min_value=1, max_value=pages, key="g_page")
    msg = st.session_state.pop("flash", None)
    st.caption(f"{total} faces accepted as **{cls}** ({kind})" + (f" · last: {msg}" if msg else ""))
    st.session_state["g_ids"] = [it["face_id"] for it in items]
    ncol = 8
    for i in range(0, len(items), ncol):
        cols = st.columns(ncol)
        for col, it in zip(cols, items[i : i + ncol]):
            if it["crop"]:
                col.image(it["crop"], width=96)
            col.checkbox(f"#{it['face_id']} {it['kind']}", key=f"g_{it['face_id']}")
    if not items:
        st.info("No faces here.")
        return
    st.markdown("**Relabel the selected faces** (each becomes an annotation by you)")
    r = st.columns([1, 1, 1, 1])
    r[0].selectbox("New label", list(LABELS), key="g_new")
    r[1].selectbox("Second label (optional)", [None] + list(LABELS), key="g_new2", format_func=lambda x: "-" if x is None else x)
    r[2].button("Relabel selected", key="g_relabel", on_click=relabel_selected, args=("g_ids", "label"), type="primary")
    r[3].button("Mark selected unusable", key="g_unusable", on_click=relabel_selected, args=("g_ids", "unusable"))


def save_image_labels(face_ids: list[int]) -> None:
    items = []
    for fid in face_ids:
        v = st.session_state.get(f"im_{fid}")
        if not v or v == "(keep)":
            continue
        items.append((fid, "unusable", None) if v == "unusable" else (fid, "label", [v]))
    if items and _who():
        S.add_annotations(store(), items, _who(), source=SOURCE)
        for fid in face_ids:
            st.session_state[f"im_{fid}"] = "(keep)"
        _flash(f"saved {len(items)} face labels")
    else:
        _flash("nothing to save")


def set_all_faces(face_ids: list[int]) -> None:
    v = st.session_state.get("im_all")
    for fid in face_ids:
        st.session_state[f"im_{fid}"] = v


def page_image() -> None:
    db = store()
    st.subheader("Image view")
    group = st.sidebar.checkbox("Group photos only (2+ faces)", key="im_group")
    imgs = S.image_list(db, min_faces=2 if group else 1, limit=500)
    if not imgs:
        st.info("No images with faces.")
        return
    ids = [i["image_id"] for i in imgs]
    if st.session_state.get("image_id") not in ids:
        cur = st.session_state.get("image_id")
        if cur is not None and S.image_view(db, cur):
            ids = [cur] + ids
        else:
            st.session_state["image_id"] = ids[0]
    info = {i["image_id"]: i for i in imgs}
    iid = st.selectbox("Image", ids, key="image_id",
                       format_func=lambda i: f"#{i} · {info[i]['n_faces']} faces · {os.path.basename(info[i]['path'])}" if i in info else f"#{i}")
    v = S.image_view(db, iid)
    if v is None:
        st.warning("image not found")
        return
    msg = st.session_state.pop("flash", None)
    if msg:
        st.caption(f"last: {msg}")
    boxes = tuple((f["face_id"], *f["box"], f"{f['idx'] + 1}: {f['label'] or '?'}") for f in v["faces"])
    img = boxed_image(tuple(v["paths"]), boxes, None, 900)
    if img:
        st.image(img, width=720)
    else:
        st.caption("image file not found")
    st.caption(" · ".join(v["paths"][:3]) + (f" · rule: {v['rule_state']} {v['rule_label'] or ''}" if v["rule_state"] != "none" else ""))
    fids = [f["face_id"] for f in v["faces"]]
    opts = ["(keep)"] + list(LABELS) + ["unusable"]
    ncol = min(6, max(1, len(v["faces"])))
    for i in range(0, len(v["faces"]), ncol):
        cols = st.columns(ncol)
        for col, f in zip(cols, v["faces"][i : i + ncol]):
            if f["crop"]:
                col.image(f["crop"], width=112)
            col.markdown(f"**{f['idx'] + 1}** · #{f['face_id']}  \n{f['label'] or '—'} ({f['label_source']})  \n"
                         f"model {f['model_label'] or '-'} {f['model_prob'] or 0:.2f}")
            col.selectbox("label", opts, key=f"im_{f['face_id']}", label_visibility="collapsed")
    a, b, c = st.columns([1, 1, 1])
    a.selectbox("Set every face to", opts[1:], key="im_all")
    b.button("Apply to all faces", key="im_apply_all", on_click=set_all_faces, args=(fids,))
    c.button("Save labels for this image", key="im_save", on_click=save_image_labels, args=(fids,), type="primary")


def render_training_panel(db: S.Store) -> None:
    """Hook for head retraining: shows a button when ``labeler.retrain.train_head`` exists."""
    try:
        retrain = importlib.import_module("labeler.training.retrain")
    except ImportError:
        return
    fn = getattr(retrain, "train_head", None)
    if not callable(fn):
        return
    st.subheader("Retrain the classification head")
    st.caption("Trains a new head on the human labels (labeler.retrain.train_head).")
    if st.button("Train head now", key="train_head"):
        with st.spinner("training..."):
            try:
                quiet = "verbose" in inspect.signature(fn).parameters
                res = fn(db, verbose=False) if quiet else fn(db)
            except Exception as e:  # noqa: BLE001 - show the failure, keep the app alive
                st.error(f"training failed: {e}")
                return
        st.json(json.loads(json.dumps(res if isinstance(res, dict) else {"result": res}, default=str)))


def page_overview() -> None:
    db = store()
    o = S.overview_stats(db)
    st.subheader("Overview")
    m = st.columns(6)
    m[0].metric("Faces", o["faces"])
    m[1].metric("Auto-accepted", o["auto_accepted"])
    m[2].metric("Reviewed", o["reviewed"])
    m[3].metric("Remaining", o["remaining"])
    m[4].metric("No face (images)", o["no_face_images"])
    m[5].metric("Broken (images)", o["broken_images"])
    done = o["auto_accepted"] + o["reviewed"]
    st.progress(done / o["faces"] if o["faces"] else 0.0, text=f"{done} of {o['faces']} faces have a label")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Progress**")
        prog = pd.DataFrame({"faces": [o["auto_accepted"], o["reviewed"], o["remaining"], o["pending"]]},
                            index=["auto-accepted", "reviewed", "remaining", "pending"])
        st.bar_chart(prog, horizontal=True)
    with c2:
        st.markdown("**Class distribution (accepted labels)**")
        dist = pd.DataFrame(o["class_distribution"]).T.reindex([x for x in list(LABELS) + ["unusable"] if x in o["class_distribution"]])
        if len(dist):
            st.bar_chart(dist, stack=True)
        else:
            st.caption("no accepted labels yet")
    st.markdown("**Agreement** (per face; rule = filename keyword given to the face)")
    rows = pd.DataFrame(o["rows"], columns=["face_id", "rule", "model", "human", "route", "decision", "accepted", "accepted_by"])
    rates = {}
    for a, b in (("rule", "model"), ("rule", "human"), ("model", "human")):
        both = rows[rows[a].notna() & rows[b].notna()]
        rates[f"{a} = {b}"] = (float((both[a] == both[b]).mean()) if len(both) else 0.0, len(both))
    rate_df = pd.DataFrame({"agreement": [v[0] for v in rates.values()], "faces compared": [v[1] for v in rates.values()]},
                           index=list(rates))
    a1, a2 = st.columns([1, 2])
    with a1:
        st.bar_chart(rate_df[["agreement"]])
        st.dataframe(rate_df, width="stretch")
    with a2:
        pair = st.radio("Confusion table", ["model vs human", "rule vs model", "rule vs human"], key="ov_pair", horizontal=True)
        x, y = pair.split(" vs ")
        both = rows[rows[x].notna() & rows[y].notna()]
        if len(both):
            st.dataframe(pd.crosstab(both[x], both[y], rownames=[x], colnames=[y]), width="stretch")
        else:
            st.caption("no faces with both")
    st.markdown("**Annotators**")
    pa = pd.DataFrame(o["per_annotator"], columns=["annotator", "action", "n"])
    if len(pa):
        pivot = pa.pivot_table(index="annotator", columns="action", values="n", aggfunc="sum", fill_value=0)
        pivot["current labels"] = [o["current_labels_by_annotator"].get(n, 0) for n in pivot.index]
        b1, b2 = st.columns([2, 1])
        b1.bar_chart(pivot.drop(columns=["current labels"]), stack=True)
        b2.dataframe(pivot, width="stretch")
    else:
        st.caption("no annotations yet")
    render_training_panel(db)


# --------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="labeler review", layout="wide")
    if not _who():
        st.title("labeler review")
        st.caption(f"database: {db_url()}")
        st.text_input("Your name (recorded with every label)", key="name_input")
        st.button("Start", key="start", on_click=set_annotator, type="primary")
        st.stop()
    sb = st.sidebar
    sb.markdown(f"Annotator: **{_who()}**")
    sb.button("Change name", key="change_name", on_click=change_annotator)
    page = sb.radio("Page", PAGES, key="page")
    sb.caption("Review keys: 1-7 label (" + ", ".join(f"{v} {k}" for k, v in KEYS.items())
               + "), Enter accept suggestion, A second label, X unusable, S skip, U undo, Esc cancel.")
    {"Review": page_review, "Gallery": page_gallery, "Image": page_image, "Overview": page_overview}[page]()


main()
