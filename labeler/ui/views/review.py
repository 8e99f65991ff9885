"""Review: one face card at a time, keyboard driven (1-7 label, Enter accept, A second label,
X unusable, S skip, U undo, Esc cancel). The queue and the card come from ``labeler.store``.

The card is an ``st.fragment``: a key press reruns the card only, from a queue precomputed in the
background with the next cards already loaded (``labeler.ui.prefetch``). Audit samples
(``store.next_audit_faces``, drawn in the background) come first: the first card waits for them, so
they are never swapped in under a card shown; each says "Audit: answer blind" and hides the proposal
until answered. The same hide-until-answered mode is a sidebar toggle for anyone.

The sidebar's "Queue" (or ``?queue=suspicious`` in the URL) picks the "suspicious labels first"
queue instead: faces already labeled (by people, an import, auto-accept or a filename keyword)
whose label is probably wrong (``labeler.quality``: confident learning's label issues and labels
the model gives less than even odds, ``store.SUSPICIOUS_MIN``), highest label-issue score first,
each card saying the current label, where it came from, the score and the class the model prefers.
Enter confirms the current label; an answer is a new annotation (appended, nothing overwritten),
takes the face out of the annotator's queue and clears the cached scores (Gallery, Overview)."""

from __future__ import annotations

import time
from typing import Any, Optional

import streamlit as st

from labeler import store as S
from labeler.types import LABELS, REVIEW_KINDS, RuleWord
from labeler.ui import prefetch as P
from labeler.ui.keys import data_uri
from labeler.ui.resources import db_url, folders, label_issues, labels_changed, policy, store
from labeler.ui.state import SOURCE, flash, goto, take_flash, who

TITLE = "Review"
ICON = ":material/rate_review:"
KEYS = {lab: str(i + 1) for i, lab in enumerate(LABELS)}  # 1-7 in LABELS order
KEYS_HELP = (("1-7", "label: " + ", ".join(f"{v} {k}" for k, v in KEYS.items())),
             ("Enter", "accept the suggestion; on a suspicious label, confirm it (not while the proposal is hidden)"), ("A", "two labels: press two class keys"),
             ("X", "unusable (not a face, unreadable)"), ("S", "skip (it stays in the others' queue)"),
             ("U", "undo my last action (walks back)"), ("Esc", "cancel two-label mode"))
#: how many audit samples a session asks for at once
AUDITS = 20
#: the queues the Review page serves (``?queue=suspicious`` opens the second)
QUEUES = {"review": "Faces to review", "suspicious": "Suspicious labels first"}
#: where a face's current label comes from (``labeler.quality.LABEL_KINDS``), as the card says it
KIND_NAMES = {"human": "people's answers", "import": "imported", "auto": "auto-accepted", "keyword": "filename keyword"}


# ---- actions (button callbacks: they run before the rerun, so the next card renders right away)


def _reset_compound() -> None:
    st.session_state["compound"] = False
    st.session_state["pending"] = None


def act(face_id: int, action: str, labels: Optional[list[str]] = None, accepted: bool = False) -> None:
    """Label / unusable / skip the face on the card. In two-label mode a label is held until the
    second one (or Enter) comes. The decision's seconds count from the card shown (``accepted``:
    Enter took the proposal)."""
    if not who():
        return
    if face_id != st.session_state.get("card_face"):
        # a key pressed before the next card was on screen reached the old card's button: it was
        # meant for the next card, so it must not relabel this one; drop it and say so
        flash(f"key press for face #{face_id} ignored: it came before the next card was shown; press it again")
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
    audit = bool(st.session_state.get("card_audit")) and action != "skip"
    t0 = st.session_state.get("card_shown_at")
    secs = time.monotonic() - t0 if t0 is not None and action != "skip" else None
    if audit and hasattr(S, "add_audit"):
        S.add_audit(store(), face_id, who(), action, labels, seconds=secs)
    else:
        S.add_annotation(store(), face_id, who(), action, labels, source=SOURCE, seconds=secs,
                         effort=None if secs is None else ("card_accept" if accepted else "card"))
    if action != "skip":
        labels_changed()  # the label-issue scores and the agreement are stale (Gallery, Overview, the next queue)
    st.session_state["last_source"] = S.AUDIT_SOURCE if audit and hasattr(S, "add_audit") else SOURCE
    _reset_compound()
    q = st.session_state.get("queue")
    if q is not None:
        P.settled(q, face_id, audit=bool(st.session_state.get("card_audit")))
    st.session_state["n_done"] = st.session_state.get("n_done", 0) + 1
    said = f"{action}" + (f" {' + '.join(labels)}" if labels else "")
    hidden = st.session_state.get("card_hidden")
    if hidden and action != "skip":
        st.session_state["reveal"] = (face_id, said, hidden)
    flash(f"face #{face_id}: {said}")


def accept(face_id: int, suggestion: Optional[str]) -> None:
    pend = st.session_state.get("pending")
    if pend and pend[0] == face_id and pend[1]:
        st.session_state["compound"] = False
        act(face_id, "label", pend[1])
    elif suggestion:
        st.session_state["compound"] = False
        act(face_id, "label", [suggestion], accepted=True)
    else:  # nothing to accept (a blind card): the key says why instead of doing nothing
        flash(f"Enter accepts a proposal, and face #{face_id} has none shown: press the class you see (1-7), X unusable or S skip")


def toggle_compound() -> None:
    st.session_state["compound"] = not st.session_state.get("compound", False)
    st.session_state["pending"] = None


def undo() -> None:
    if not who():
        return
    r = P.undo(store(), who(), st.session_state.get("last_source", SOURCE), SOURCE, st.session_state.get("queue"))
    if r is None:  # (else the face is shown again right away)
        flash("nothing to undo")
        return
    st.session_state["last_source"] = SOURCE
    st.session_state.pop("reveal", None)
    _reset_compound()
    labels_changed()
    flash(f"undid {r['action']} {' + '.join(r['labels'] or [])} on face #{r['face_id']}")


def open_image(image_id: int) -> None:
    st.session_state["image_id"] = image_id
    goto("Image")


# ---- the page


def bar(p: float, n: int = 20) -> str:
    """A text progress bar for a probability."""
    k = int(round(max(0.0, min(1.0, p)) * n))
    return "█" * k + "·" * (n - k)


def queue_kind() -> str:
    """The queue chosen on the sidebar ("review" | "suspicious"), first from ``?queue=``."""
    if "queue_kind" not in st.session_state:
        st.session_state["queue_kind"] = "suspicious" if st.query_params.get("queue") == "suspicious" else "review"
    return st.session_state["queue_kind"]


def _set_queue() -> None:
    kind = st.session_state["w_queue_kind"]
    st.session_state["queue_kind"] = kind
    if kind == "suspicious":  # the address opens this queue again (a link to share)
        st.query_params["queue"] = kind
    else:
        st.query_params.pop("queue", None)


def choose_queue() -> str:
    """The sidebar's queue control; the queue to serve: "suspicious" only where the label issues can
    be scored (the quality extra), else "review" with a one-line note of what to install."""
    from labeler.quality import INSTALL, missing

    sb = st.sidebar
    kind = queue_kind()
    sb.radio("Queue", list(QUEUES), index=list(QUEUES).index(kind), key="w_queue_kind", format_func=QUEUES.get,
             on_change=_set_queue, help="Suspicious labels first: faces already labeled whose label the model "
             f"doubts (confident learning's label issues, or less than even odds: score >= {S.SUSPICIOUS_MIN}), highest "
             "label-issue score first; Enter confirms the current label, 1-7 give another. A face you have answered "
             "(here or before) is left to the others.")
    if kind == "suspicious" and missing():
        sb.warning(f"Suspicious labels first needs the quality extra: {INSTALL}")
        return "review"
    return kind


def filters(kind: str = "review") -> dict[str, Any]:
    """The sidebar filters, as keyword arguments of ``review_queue`` (of the suspicious queue:
    only "Include faces I skipped")."""
    sb = st.sidebar
    sb.markdown("**Review filters**")
    if kind == "suspicious":
        skipped = sb.checkbox("Include faces I skipped", key="f_skipped")
        sb.caption("Reason, class and folder filters apply to the review queue.")
        return {"include_skipped": skipped}
    kinds = sb.multiselect("Reason", list(REVIEW_KINDS), key="f_kinds")
    prop = sb.multiselect("Proposed class", list(LABELS), key="f_prop")
    fl = folders(db_url())
    opts = [""] + [f for f, _n in fl]
    counts = dict(fl)
    folder = sb.selectbox("Source folder", opts, key="f_folder",
                          format_func=lambda f: "(all folders)" if not f else f"{f} ({counts.get(f, 0)})")
    skipped = sb.checkbox("Include faces I skipped", key="f_skipped")
    return {"reason_kinds": kinds or None, "proposed": prop or None, "folder": folder or None, "include_skipped": skipped}


def _queue(db: S.Store, f: dict[str, Any], kind: str = "review") -> P.Queue:
    """This session's precomputed queue for the filters (a new one when they, or the queue kind, changed)."""
    suspicious = kind == "suspicious"
    key = (who(), tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(f.items())),
           bool(st.session_state.get("audits_first", True)) and not suspicious, kind)
    q = st.session_state.get("queue")
    if q is None or q.key != key:
        if q is not None and q.suspicious != suspicious:
            st.session_state.pop("fc_cards", None)  # the fast card's rendered cards say the other queue's evidence
        audits, issues = None, None
        if suspicious:
            issues = {i: x for i, x in (label_issues(db_url()) or {}).items() if S.is_suspicious(x)}
        elif key[2] and hasattr(S, "next_audit_faces"):
            db_, name, pol = db, who(), policy()
            audits = lambda: [a.face_id for a in S.next_audit_faces(db_, name, AUDITS, pol)]  # noqa: E731
        q = st.session_state["queue"] = P.new_queue(db, who(), f, key, audits, issues=issues)
    if q.audits is not None:  # the first card waits for the audit samples: they come first, never later
        wait_audits(q)
        P.take_audits(db, who(), f, q)
    return q


def waiting_text(q: P.Queue) -> str:
    """What the queue's count counts, after the number."""
    return ("suspicious labels left to check (most suspicious first)" if q.suspicious
            else "to review with these filters")


def empty_text(q: P.Queue) -> str:
    return ("No suspicious label left to check: none that the model doubts, or you have answered each."
            if q.suspicious else "Nothing left to review with these filters.")


def with_issue(card: dict[str, Any], q: P.Queue) -> dict[str, Any]:
    """The card of a face of the suspicious queue carries its label issue (``issue``)."""
    return dict(card, issue=q.issues.get(card["face_id"])) if q.suspicious else card


def suspect(x) -> tuple[str, str, str]:
    """A suspicious label in words, as (current label, where it came from, what the model says)."""
    fb = " (an earlier model's probabilities: the newest learned this label)" if x.fallback else ""
    return (x.label, KIND_NAMES.get(x.kind, x.kind),
            f"issue score {x.score:.2f}" + (", a label issue by confident learning" if x.flagged else "")
            + f"; the model{' (' + x.prob_source + ')' if x.prob_source else ''} prefers {x.suggested} {x.suggested_prob:.2f}{fb}")


def suggestion_of(card: dict[str, Any]) -> Optional[str]:
    """What Enter accepts: the current label on a suspicious card, else the decision's or the model's class."""
    x = card.get("issue")
    return x.label if x is not None else (card["decision_label"] or card["model_label"])


def wait_audits(q: P.Queue) -> None:
    """Say what is being waited for while the audit samples are drawn (it reads every face once);
    each line written is a point where a click in the sidebar (untick "Audit samples first") stops it."""
    note, t0 = st.empty(), time.monotonic()
    while not q.audits.done():
        note.info(f"Drawing the audit samples ({time.monotonic() - t0:.0f} s): blind labels of random candidates for auto-accept, "
                  "the first cards of this session. Untick **Audit samples first** in the sidebar to review without them.")
        try:
            q.audits.result(timeout=0.5)
        except Exception:  # noqa: BLE001 - a timeout (drawn yet?) or a failure (P.take_audits: none then)
            pass
    note.empty()


def _evidence(card: dict[str, Any]) -> None:
    if card.get("issue") is not None:
        lab, src, said = suspect(card["issue"])
        st.markdown(f"**Suspicious label:** now **{lab}** ({src})  \n{said}  \nEnter confirms {lab}; 1-7 give another class.")
    else:
        st.markdown(f"**Why review** ({card['reason_kind']}, priority {card['priority']:.2f})  \n{card['reason']}")
    rw = [RuleWord.from_pair(p) for p in card["rule_words"]]
    words = [w.word for w in rw if not w.negated]
    neg = [w.word for w in rw if w.negated]
    rule = {"labeled": f"**{card['rule_label']}**", "ambiguous": "ambiguous", "none": "no keyword"}.get(card["rule_state"], card["rule_state"])
    st.markdown(f"**Rule:** {rule}" + (f" — words: {', '.join(f'`{w}`' for w in words)}" if words else "")
                + (f" — negated: {', '.join(f'`{w}`' for w in neg)}" if neg else ""))
    top = sorted(card["model_probs"].items(), key=lambda kv: -kv[1])[:3]
    lines = "  \n".join(f"`{bar(p, 14)}` {lab} {p:.2f}" for lab, p in top)
    st.markdown(f"**Model** ({card['model_source'] or '-'}):  \n{lines or 'no proposal'}")
    qtxt = ", ".join(f"{k} {v:.3g}" for k, v in card["quality"].items() if isinstance(v, (int, float)))
    st.markdown(f"**Quality:** flags: {', '.join(card['flags']) or 'none'}  \n{qtxt}")
    if card["annotations"]:
        st.markdown("**Others:** " + "; ".join(f"{n}: {a['action']} {' + '.join(a['labels'])}" for n, a in card["annotations"].items()))


def _card(card: dict[str, Any], hidden: bool, audit: bool) -> None:
    fid = card["face_id"]
    st.markdown(f"#### Face #{fid} · image #{card['image_id']} · face {card['idx'] + 1} of {card['n_faces']}")
    if audit:
        st.warning("**Audit: answer blind.** Press the class you see (1-7), X unusable, S skip. Nothing is proposed, "
                   "so Enter accepts nothing.  \nAn audit sample: a random candidate for auto-accept; blind labels measure how "
                   "right the auto-accepted labels are. The proposal is shown after your answer.")
    c1, c2, c3 = st.columns([1.1, 1.4, 1.2])
    with c1:  # images inline (data: URIs): the card is whole when it arrives, no second request per image
        if card["crop"]:
            st.markdown(f'<img alt="face {fid}" src="{data_uri(card["crop"])}" style="width:260px;height:auto">', unsafe_allow_html=True)
        else:
            st.warning("no crop stored")
    with c2:
        if hidden:
            st.markdown("**Proposal hidden until you answer.**  \nLabel what you see (1-7); the proposal is shown after the key press.")
        else:
            _evidence(card)
    with c3:
        if card.get("photo"):
            st.markdown(f'<img alt="photo {card["image_id"]}" src="{data_uri(card["photo"])}" style="width:320px;height:auto">', unsafe_allow_html=True)
        else:
            st.caption("image file not found: " + (card["paths"][0] if card["paths"] else "-"))
        st.button("Open image view", key="open_img", on_click=open_image, args=(card["image_id"],))


def _buttons(fid: int, suggestion: Optional[str], hidden: bool) -> None:
    pend = st.session_state.get("pending")
    held = pend[1] if pend and pend[0] == fid else []
    compound = bool(st.session_state.get("compound"))
    if compound:
        st.info("Two labels: press two class keys (or one, then Enter). Esc cancels."
                + (f" Held: **{' + '.join(held)}**" if held else ""))
    if st.session_state.get("card_face") != fid:  # shown now: its decision's time counts from here
        st.session_state["card_shown_at"] = time.monotonic()
    st.session_state["card_face"] = fid  # the face the buttons below act on (see act())
    shown = None if hidden else suggestion
    for col, lab in zip(st.columns(len(LABELS)), LABELS):
        col.button(lab, key=f"lab_{lab}", shortcut=KEYS[lab], on_click=act, args=(fid, "label", [lab]),
                   type="primary" if lab == shown or lab in held else "secondary", width="stretch")
    b = st.columns([1.6, 1.3, 1.1, 0.9, 0.9, 0.9])
    what = (" + ".join(held) if held else shown) or ("nothing proposed (press 1-7)" if hidden else "no proposal")
    b[0].button(f"Accept: {what}", key="accept", shortcut="Enter", on_click=accept, args=(fid, shown), width="stretch",
                type="primary" if held or shown else "secondary")  # (Enter on nothing to accept says why)
    b[1].button("Second label", key="second", shortcut="A", on_click=toggle_compound, width="stretch",
                type="primary" if compound else "secondary")
    b[2].button("Unusable", key="unusable", shortcut="X", on_click=act, args=(fid, "unusable"), width="stretch")
    b[3].button("Skip", key="skip", shortcut="S", on_click=act, args=(fid, "skip"), width="stretch")
    b[4].button("Undo", key="undo", shortcut="U", on_click=undo, width="stretch")
    b[5].button("Cancel", key="cancel", shortcut="Esc", on_click=_reset_compound, width="stretch", disabled=not compound)


def _reveal() -> None:
    """After an answer given with the proposal hidden: what was said, and what had been proposed."""
    r = st.session_state.pop("reveal", None)
    if r:
        fid, said, proposal = r
        st.info(f"Face #{fid}: you said **{said}** · the proposal was **{proposal}**")


@st.fragment
def card_area(f: dict[str, Any], kind: str = "review") -> None:
    """The card: rerun alone on every key press (the sidebar and the rest of the page stay)."""
    if st.session_state.get("page") not in (None, TITLE):  # "Open image view": the whole app switches page
        st.rerun(scope="app")
    db = store()
    q = _queue(db, f, kind)
    fid, audit = P.head(db, db_url(), who(), f, q)
    msg = take_flash()
    st.caption(f"{P.waiting(q)} {waiting_text(q)} · {st.session_state.get('n_done', 0)} done this session"
               + (f" · last: {msg}" if msg else ""))
    _reveal()
    if fid is None:
        st.session_state["card_face"] = None
        st.success(empty_text(q))
        st.button("Undo my last action", key="undo", shortcut="U", on_click=undo)
        return
    card = P.card(db, db_url(), fid)
    if card is None:
        P.settled(q, fid, audit)
        st.rerun(scope="fragment")
    card = with_issue(card, q)
    suggestion = suggestion_of(card)
    hidden = audit or bool(st.session_state.get("hide_mode"))
    st.session_state["card_audit"] = audit
    st.session_state["card_hidden"] = (f"{suggestion or 'none'}" + (f" (model {card['model_label']} {card['model_prob']:.2f})"
                                       if card.get("model_prob") is not None else "")) if hidden else None
    _card(card, hidden, audit)
    _buttons(fid, suggestion, hidden)
