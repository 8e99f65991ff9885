"""Tracks: a video's face track (one person in one shot) is labeled as a unit. The card shows a
filmstrip of key frames (face crops in time order), the aggregated proposal (mean of the frames'
probabilities and the attention pool) and the segments where the proposed expression changes.
``1``-``7`` label every face of the track and move on to the next track; ``Shift+1``-``7`` label
the faces of the current segment only (``←`` / ``→`` choose it); ``U`` undoes one's last. Every face gets its own
append-only annotation, with the source ``track:<id>`` (or ``track:<id>/segment:<k>``)."""

from __future__ import annotations

import streamlit as st

from labeler import store as S
from labeler.types import LABELS
from labeler.ui.resources import store
from labeler.ui.state import flash, take_flash, who

TITLE = "Tracks"
ICON = ":material/movie:"
KEYS = {lab: str(i + 1) for i, lab in enumerate(LABELS)}
KEYS_HELP = (("1-7", "label the whole track (every frame), then go to the next track"),
             ("Shift+1-7", "label the current segment only"), ("← →", "previous / next segment"),
             ("N / P", "next / previous track"), ("U", "undo your last track or segment labels"))
STRIP = 10  # key frames shown


def _tracks(only_open: bool) -> list[int]:
    return S.track_ids(store(), only_open=only_open)


def _move(delta: int, ids: list[int]) -> None:
    cur = st.session_state.get("tr_id")
    i = ids.index(cur) if cur in ids else -1
    st.session_state["tr_id"] = ids[max(0, min(len(ids) - 1, i + delta))] if ids else None
    st.session_state["tr_seg"] = 0


def label_track(track_id: int, label: str, segment, n_segments: int) -> None:
    if not who():
        return
    n = len(S.label_track(store(), track_id, label, who(), segment=segment))
    if segment is None:
        flash(f"track #{track_id}: {n} frames labeled {label}")
        ids = _tracks(st.session_state.get("tr_open", True))
        nxt = [t for t in ids if t != track_id]
        after = [t for t in nxt if t > track_id]
        st.session_state["tr_id"] = (after or nxt or [track_id])[0]
        st.session_state["tr_seg"] = 0
    else:
        flash(f"track #{track_id} segment {segment + 1}: {n} frames labeled {label}")
        st.session_state["tr_seg"] = min(n_segments - 1, segment + 1)


def undo() -> None:
    if not who():
        return
    t = S.undo_track_label(store(), who())
    if t is None:
        flash("nothing to undo")
        return
    st.session_state["tr_id"], st.session_state["tr_seg"] = t, 0
    flash(f"track #{t}: your last labels undone")


def _seg(delta: int, n: int) -> None:
    st.session_state["tr_seg"] = max(0, min(n - 1, st.session_state.get("tr_seg", 0) + delta))


def _top(probs: dict, k: int = 3) -> str:
    return ", ".join(f"{lab} {p:.2f}" for lab, p in sorted(probs.items(), key=lambda kv: -kv[1])[:k])


def _filmstrip(card: S.TrackCard, seg: int) -> None:
    n = len(card.face_ids)
    m = min(n, STRIP)
    picks = sorted({round(i * (n - 1) / max(1, m - 1)) for i in range(m)})  # evenly spread, first and last in
    crops = S.face_crops_of(store(), [card.face_ids[i] for i in picks])
    cols = st.columns(max(1, len(picks)))
    for col, i in zip(cols, picks):
        fid = card.face_ids[i]
        if crops.get(fid):
            col.image(crops[fid], width=96)
        mark = "▶ " if card.face_segments[i] == seg else ""
        human = card.human.get(fid)
        col.caption(f"{mark}{card.face_t_ms[i] / 1000:.1f} s · seg {card.face_segments[i] + 1}"
                    + (f"  \n**{human}**" if human else ""))


def _keys(card: S.TrackCard, seg: int) -> None:
    nseg = max(1, len(card.segments))
    st.caption("The whole track (key):")
    for col, lab in zip(st.columns(len(LABELS)), LABELS):
        col.button(lab, key=f"tr_lab_{lab}", shortcut=KEYS[lab], on_click=label_track,
                   args=(card.track_id, lab, None, nseg), width="stretch", help="label the whole track")
    st.caption(f"Segment {seg + 1} of {nseg} only (Shift + key):")
    for col, lab in zip(st.columns(len(LABELS)), LABELS):
        col.button(lab, key=f"tr_seg_{lab}", shortcut=f"Shift+{KEYS[lab]}", on_click=label_track,
                   args=(card.track_id, lab, seg, nseg), width="stretch", help="label the current segment")
    ids = _tracks(st.session_state.get("tr_open", True))
    b = st.columns(5)
    b[0].button("◀ Segment", key="tr_seg_prev", shortcut="Left", on_click=_seg, args=(-1, nseg), width="stretch")
    b[1].button("Segment ▶", key="tr_seg_next", shortcut="Right", on_click=_seg, args=(1, nseg), width="stretch")
    b[2].button("Previous track", key="tr_prev", shortcut="P", on_click=_move, args=(-1, ids), width="stretch")
    b[3].button("Next track", key="tr_next", shortcut="N", on_click=_move, args=(1, ids), width="stretch")
    b[4].button("Undo", key="tr_undo", shortcut="U", on_click=undo, width="stretch")


def render() -> None:
    st.sidebar.checkbox("Only tracks with unlabeled frames", value=True, key="tr_open")
    ids = _tracks(st.session_state.get("tr_open", True))
    if not ids:
        st.subheader("Tracks")
        st.info("No video face tracks to label (`labeler autolabel` a folder with videos).")
        return
    if st.session_state.get("tr_id") not in ids and st.session_state.get("tr_id") not in _tracks(False):
        st.session_state["tr_id"] = ids[0]
    if st.session_state.get("tr_id") is None:
        st.session_state["tr_id"] = ids[0]
    card = S.track_card(store(), st.session_state["tr_id"])
    if card is None:
        st.session_state["tr_id"] = ids[0]
        card = S.track_card(store(), ids[0])
    nseg = max(1, len(card.segments))
    seg = min(st.session_state.get("tr_seg", 0), nseg - 1)
    st.session_state["tr_seg"] = seg
    done = len(card.human)
    st.subheader(f"Track #{card.track_id} · {card.video_name} · person {card.track_no}, shot {card.shot + 1}")
    msg = take_flash()
    st.caption(f"{card.start_ms / 1000:.1f}-{card.end_ms / 1000:.1f} s · {len(card.face_ids)} frames · "
               f"{done} labeled · {len(ids)} tracks to label" + (f" · last: {msg}" if msg else "") + " · press ? for the keys")
    _filmstrip(card, seg)
    st.markdown(f"**Proposal: {card.label or '-'}** (mean of the frames: {_top(card.mean)}) · "
                f"attention-weighted: **{card.att_label or '-'}** ({_top(card.attention)})")
    lines = []
    for k, g in enumerate(card.segments):
        cur = "▶ " if k == seg else ""
        lines.append(f"- {cur}segment {k + 1}: {g['start_ms'] / 1000:.1f}-{g['end_ms'] / 1000:.1f} s, "
                     f"proposed **{g['label']}** (frames {g['start_frame']}-{g['end_frame']})")
    st.markdown("Segments:\n" + "\n".join(lines))
    _keys(card, seg)
