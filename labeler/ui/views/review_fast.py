"""The fast review card's server side: applies the decisions the browser card sends (through the same
store calls as the server card: ``add_annotation`` / ``add_audit`` / ``undo_last``, with the
annotator's name), each (client, sequence number, face) once and in order, and hands the browser a
window of the next cards (``labeler.ui.fastcard``). The queue is the server card's
(``labeler.ui.prefetch``): audit samples first, settled faces dropped, undone faces put back; or
the "suspicious labels first" queue, each card with its label issue and Enter confirming the current label."""

from __future__ import annotations

import html
from typing import Any, Optional

import streamlit as st

from labeler import store as S
from labeler.types import LABELS, RuleWord
from labeler.ui import prefetch as P
from labeler.ui.fastcard import fast_card
from labeler.ui.keys import data_uri
from labeler.ui.resources import db_url, labels_changed, store
from labeler.ui.state import SOURCE, flash, take_flash, who
from labeler.ui.views import review as R

#: cards the browser holds ahead of the one shown
WINDOW = 20
#: cards loaded in the background beyond the window
AHEAD = 8
#: proposals of answered faces kept for the page (shown after a hidden card's answer)
REVEALS = 20
#: rendered cards kept in the session (faces of the window and a few behind)
KEEP = 64


def _applied() -> dict[str, dict[int, tuple[Optional[int], str, str]]]:
    """Per browser card (``cid``): sequence number -> (face, action, source) of each decision applied."""
    return st.session_state.setdefault("fc_applied", {})


def _audit_faces(q: Optional[P.Queue]) -> set[int]:
    served = st.session_state.setdefault("fc_audit", set())
    return served | set(q.audit if q is not None else ())


def _undo(q: Optional[P.Queue], src: str) -> Optional[dict[str, Any]]:
    r = P.undo(store(), who(), src, SOURCE, q)  # the face comes back at the head of the queue
    if r is not None and q is not None:
        st.session_state.setdefault("fc_cards", {}).pop(r["face_id"], None)
    if r is not None:
        labels_changed()
    return r


def apply(payload: Any) -> int:
    """Apply the decisions of one trigger value in sequence order, those not applied before; returns
    how many were applied now."""
    if not who() or not isinstance(payload, dict) or not isinstance(payload.get("decisions"), list):
        return 0
    mine = _applied().setdefault(str(payload.get("cid")), {})
    q = st.session_state.get("queue")
    n = 0
    for d in sorted((d for d in payload["decisions"] if isinstance(d, dict)), key=lambda d: int(d.get("seq", 0))):
        seq, face, action = int(d.get("seq", 0)), d.get("face"), d.get("action")
        if seq in mine and mine[seq][0] == face:
            continue  # sent again (the next trigger carries every decision not yet acknowledged)
        try:
            if action == "undo":
                tgt = mine.get(int(d["target"])) if d.get("target") is not None else None
                src = tgt[2] if tgt else st.session_state.get("last_source", SOURCE)
                r = _undo(q, src)
                mine[seq] = (face, "undo", src)
                flash("nothing to undo" if r is None else f"undid {r['action']} {' + '.join(r['labels'] or [])} on face #{r['face_id']}")
                st.session_state["last_source"] = SOURCE
            else:
                face = int(face)
                labels = list(d.get("labels") or []) or None
                was_audit = face in _audit_faces(q) and not (q is not None and q.suspicious)
                audit = was_audit and action != "skip"
                secs = float(d["ms"]) / 1000 if isinstance(d.get("ms"), (int, float)) and action != "skip" else None
                if audit:
                    S.add_audit(store(), face, who(), action, labels, seconds=secs)
                else:
                    S.add_annotation(store(), face, who(), action, labels, source=SOURCE, seconds=secs,
                                     effort=None if secs is None else ("card_accept" if d.get("accept") else "card"))
                src = S.AUDIT_SOURCE if audit else SOURCE
                mine[seq] = (face, action, src)
                if action != "skip":
                    labels_changed()  # the label-issue scores and the agreement are stale
                _revealed(face, q)
                st.session_state["last_source"] = src
                if q is not None:
                    P.settled(q, face, audit=was_audit)
                st.session_state["n_done"] = st.session_state.get("n_done", 0) + 1
        except S.AnnotationError as e:  # recorded as handled: it would fail again
            mine[seq] = (face, str(action), SOURCE)
            flash(f"face #{face}: not stored: {e}")
        n += 1
    return n


def _revealed(face: int, q: Optional[P.Queue] = None) -> None:
    """Keep what had been proposed for ``face``, answered now: the page shows it after the answer."""
    card = st.session_state.setdefault("fc_cards", {}).get(face)
    if card is None:
        got = S.face_card(store(), face)
        card = _render_text(R.with_issue(got, q) if q is not None else got) if got is not None else None
    if card is not None:
        rv = st.session_state.setdefault("fc_reveals", {})
        rv[face] = card["reveal"]
        for k in list(rv)[:-REVEALS]:
            rv.pop(k)


def _on_decide() -> None:
    got = (st.session_state.get("fast_card") or {}).get("decide")
    if isinstance(got, dict) and isinstance(got.get("have"), list):  # the cards whose images that page holds
        st.session_state["fc_have"] = {h for h in got["have"] if isinstance(h, int)}
    apply(got)


def _on_open() -> None:
    got = (st.session_state.get("fast_card") or {}).get("open")
    if got is not None:
        R.open_image(int(got))


def _evidence(card: dict[str, Any]) -> str:
    """The "why review" column as HTML (every value escaped)."""
    e = html.escape
    x = card.get("issue")
    rw = [RuleWord.from_pair(p) for p in card["rule_words"]]
    words = [w.word for w in rw if not w.negated]
    neg = [w.word for w in rw if w.negated]
    rule = {"labeled": f"<strong>{e(str(card['rule_label']))}</strong>", "ambiguous": "ambiguous",
            "none": "no keyword"}.get(card["rule_state"], e(str(card["rule_state"])))
    top = sorted(card["model_probs"].items(), key=lambda kv: -kv[1])[:3]
    model = "<br>".join(f"<code>{R.bar(p, 14)}</code> {e(lab)} {p:.2f}" for lab, p in top) or "no proposal"
    qtxt = ", ".join(f"{e(k)} {v:.3g}" for k, v in card["quality"].items() if isinstance(v, (int, float)))
    if x is not None:
        lab, src, said = R.suspect(x)
        why = (f"<p><strong>Suspicious label:</strong> now <strong>{e(lab)}</strong> ({e(src)})<br>{e(said)}<br>"
               f"Enter confirms {e(lab)}; 1-7 give another class.</p>")
    else:
        why = f"<p><strong>Why review</strong> ({e(str(card['reason_kind']))}, priority {card['priority']:.2f})<br>{e(str(card['reason']))}</p>"
    out = [why,
           f"<p><strong>Rule:</strong> {rule}" + (f" — words: {', '.join(f'<code>{e(w)}</code>' for w in words)}" if words else "")
           + (f" — negated: {', '.join(f'<code>{e(w)}</code>' for w in neg)}" if neg else "") + "</p>",
           f"<p><strong>Model</strong> ({e(str(card['model_source'] or '-'))}):<br>{model}</p>",
           f"<p><strong>Quality:</strong> flags: {e(', '.join(card['flags']) or 'none')}<br>{qtxt}</p>"]
    if card["annotations"]:
        out.append("<p><strong>Others:</strong> " + "; ".join(e(f"{n}: {a['action']} {' + '.join(a['labels'])}")
                                                          for n, a in card["annotations"].items()) + "</p>")
    return "".join(out)


def _render_text(card: dict[str, Any]) -> dict[str, Any]:
    """The browser's record of one card without its images; hidden-until-answered is applied later."""
    fid = card["face_id"]
    sugg = R.suggestion_of(card)
    x = card.get("issue")
    return {"banner": f"Suspicious label: {x.label} ({R.KIND_NAMES.get(x.kind, x.kind)}), the model prefers {x.suggested}. "
                      "Enter confirms it, 1-7 another class, X unusable, S skip." if x is not None else "",
            "id": fid, "image_id": card["image_id"],
            "head": f"Face #{fid} · image #{card['image_id']} · face {card['idx'] + 1} of {card['n_faces']}",
            "photo_missing": "image file not found: " + (card["paths"][0] if card["paths"] else "-"),
            "suggestion": sugg, "evidence": _evidence(card),
            "reveal": f"{sugg or 'none'}" + (f" (model {card['model_label']} {card['model_prob']:.2f})"
                                             if card.get("model_prob") is not None else "")}


def _render(card: dict[str, Any]) -> dict[str, Any]:
    """The browser's record of one card, images as data: URIs."""
    return dict(_render_text(card), crop=data_uri(card["crop"]), photo=data_uri(card.get("photo")))


def window(db: S.Store, q: P.Queue, f: dict[str, Any]) -> list[dict[str, Any]]:
    """The next ``WINDOW`` cards of the queue (audit samples first), loaded or taken from the prefetch."""
    cache: dict[int, dict[str, Any]] = st.session_state.setdefault("fc_cards", {})
    url = db_url()
    fid, _audit = P.head(db, url, who(), f, q)  # drops settled faces at the head, tops the batch up
    out: list[dict[str, Any]] = []
    if fid is None:
        return out
    audits = list(q.audit[:WINDOW])
    ids = audits + [i for i in q.ids if i not in audits][:WINDOW - len(audits)]
    P.prefetch(db, url, [i for i in ids if i not in cache] + q.ids[len(ids):len(ids) + AHEAD])
    hide = bool(st.session_state.get("hide_mode"))
    served = st.session_state.setdefault("fc_audit", set())
    have = st.session_state.pop("fc_have", set())  # only for the run that answers that trigger
    for i in ids:
        if i not in cache:
            card = P.card(db, url, i)
            if card is None:
                P.settled(q, i, i in audits)
                continue
            cache[i] = _render(R.with_issue(card, q))
        is_audit = i in audits
        if is_audit:
            served.add(i)
        c = dict(cache[i], audit=is_audit, hidden=is_audit or hide)
        if i in have:  # the page has its images already
            del c["crop"], c["photo"]
        if c["hidden"]:  # nothing of the proposal on the page before the answer
            c["evidence"], c["suggestion"], c["banner"] = "", None, ""
            del c["reveal"]
        out.append(c)
    if len(cache) > KEEP:
        for k in list(cache)[: len(cache) - KEEP]:
            if k not in ids:
                cache.pop(k)
    return out


@st.fragment
def fast_area(f: dict[str, Any], kind: str = "review") -> None:
    """The browser card: a rerun here only stores decisions and refills the window."""
    if st.session_state.get("page") not in (None, R.TITLE):  # "Open image view": the whole app switches page
        st.rerun(scope="app")
    db = store()
    q = R._queue(db, f, kind)
    win = window(db, q, f)
    acks = {cid: max(m) for cid, m in _applied().items() if m}
    st.session_state["fc_rev"] = rev = st.session_state.get("fc_rev", 0) + 1  # new data on every run: the card hears each
    fast_card({"window": win, "acks": acks, "rev": rev, "reveals": st.session_state.get("fc_reveals", {}), "left": P.waiting(q), "n_done": st.session_state.get("n_done", 0),
               "msg": take_flash() or "", "empty": not win,
               "what": R.waiting_text(q), "empty_text": R.empty_text(q), "labels": list(LABELS), "keys": dict(R.KEYS)},
              on_decide=_on_decide, on_open=_on_open)
