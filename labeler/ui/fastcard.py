"""The review card in the browser (``st.components.v2``, no iframe): the page holds a window of the
next cards, and a key press shows the next one at once, with no server round trip before it is on
screen and usable. A hidden proposal (audit samples, hide-until-answered) is not on
the page before the answer: the server sends it with the acknowledgement (``reveals``). The decisions go to Python as one trigger value carrying every decision not yet
acknowledged, in order (``{"cid": ..., "decisions": [{"seq", "face", "action", "labels", "target", "ms", "accept"}]}``;
``ms``: how long the face was on screen before the key, ``accept``: Enter took the proposal):
a trigger lost while a rerun runs is covered by the next one, and the server applies each
(client, sequence number, face) once (``labeler.ui.views.review_fast``). The server answers with a new
window and the highest sequence number it has applied (``acks``); the card shown is the window with the
decisions still in flight played over it.

A blind card (an audit sample, or hide-until-answered) says so in a banner (``data-mode`` "audit" /
"blind"; a card of the "suspicious labels first" queue: "suspicious", its banner the server's
``banner`` text; "review" otherwise) with the keys that answer it; Enter, with nothing proposed, says why it
stores nothing. Keys as on the server card: 1-7 label, Enter accept, A two labels, X unusable, S skip, U undo (walks
back, also over decisions still in flight), Esc cancel two-label mode. The root element carries
``data-face`` (the face shown), ``data-live`` ("1" when its keys act), ``data-inflight`` (decisions
not yet stored) and ``data-rev`` (the server run it last heard from), for tests and the benchmark.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from labeler.ui.keys import TYPING_JS

_CSS = """
/* Streamlit fades an element whose script run is under way (after 0.5 s); this card is drawn by the
   page, and what it shows is current while the run stores the last decisions: no fading */
.st-key-fast_card[data-stale="true"] { opacity: 1 !important; transition: none !important; }
.lbl-card { font: 15px/1.5 "Source Sans Pro", sans-serif; }
.lbl-card .lbl-cap { color: #808495; font-size: 14px; margin-bottom: 4px; }
.lbl-card .lbl-info { background: #e8f0fe; color: #1c4f9c; border-radius: 8px; padding: 8px 14px; margin: 6px 0; }
.lbl-card .lbl-info:empty, .lbl-card .lbl-note:empty { display: none; }
.lbl-card .lbl-head { font-size: 1.25rem; font-weight: 600; margin: 6px 0 4px; }
.lbl-card .lbl-note { color: #808495; font-size: 14px; }
.lbl-card .lbl-banner { border-radius: 8px; padding: 8px 14px; margin: 6px 0; font-weight: 600; }
.lbl-card .lbl-banner:empty { display: none; }
.lbl-card .lbl-banner.lbl-audit { background: #fff4e5; color: #7a4100; border: 2px solid #ffa421; }
.lbl-card .lbl-banner.lbl-blind { background: #f0f2f6; color: #31333f; border: 2px solid #d3d5db; }
.lbl-card .lbl-banner.lbl-suspect { background: #fdecea; color: #7d1a1a; border: 2px solid #ff8c8c; }
.lbl-card .lbl-cols { display: grid; grid-template-columns: 1.1fr 1.4fr 1.2fr; gap: 16px; margin: 8px 0; }
.lbl-card .lbl-crop img { width: 260px; height: auto; }
.lbl-card .lbl-photo img { width: 320px; height: auto; display: block; }
.lbl-card .lbl-ev p { margin: 0 0 8px; }
.lbl-card .lbl-ev code { background: #f0f2f6; padding: 0 3px; border-radius: 3px; font-size: 13px; }
.lbl-card .lbl-row { display: grid; gap: 8px; margin: 6px 0; }
.lbl-card button { font: 15px sans-serif; padding: 6px 8px; border-radius: 8px; border: 1px solid #d3d5db; background: #fff;
  color: #31333f; cursor: pointer; }
.lbl-card button.lbl-primary { background: #ff4b4b; border-color: #ff4b4b; color: #fff; }
.lbl-card button:disabled { opacity: .45; cursor: not-allowed; }
.lbl-card button kbd { font: 11px monospace; opacity: .7; margin-left: 4px; }
.lbl-card.lbl-wait .lbl-cols { opacity: .35; }
"""

_JS = TYPING_JS + r"""
export default function(component) {
  const { data, parentElement } = component;
  if (!document.getElementById(data.css_id)) {
    const css = document.createElement('style'); css.id = data.css_id; css.textContent = data.css; document.head.appendChild(css);
  }
  let S = parentElement.__lblCard;
  if (!S) {  // first call: the state lives with the element across reruns (this function runs again on each new data)
    S = parentElement.__lblCard = { cid: Math.random().toString(36).slice(2, 12), seq: 0, pending: [], history: [], cards: new Map(),
      imgs: new Map(), view: [], shown: null, compound: false, held: [], reveal: '', last: '', blind: 0, sent: 0, adopt: false };
    build(S, parentElement);
    S.onKey = (e) => onKey(S, e);
    document.addEventListener('keydown', S.onKey, true);
    S.timer = setInterval(() => { if (S.pending.length && performance.now() - S.sent > 3000) { S.waiting = false; send(S); } }, 1000);
    S.cleanup = () => { document.removeEventListener('keydown', S.onKey, true); clearInterval(S.timer); };
  }
  S.setTrigger = component.setTriggerValue;
  receive(S, data);
  return S.cleanup;
}

function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text) e.textContent = text; return e; }

function build(S, root) {
  const c = S.root = el('div', 'lbl-card'); root.replaceChildren(c);
  S.cap = el('div', 'lbl-cap'); S.info = el('div', 'lbl-info'); S.head = el('div', 'lbl-head'); S.note = el('div', 'lbl-note');
  S.banner = el('div', 'lbl-banner');
  const cols = el('div', 'lbl-cols'); S.crop = el('div', 'lbl-crop'); S.ev = el('div', 'lbl-ev'); const right = el('div');
  S.photo = el('div', 'lbl-photo'); S.open = el('button', '', 'Open image view'); S.open.type = 'button';
  S.open.onclick = () => { const f = S.cards.get(S.shown); if (f && S.setTrigger) S.setTrigger('open', f.image_id); };
  right.append(S.photo, S.open); cols.append(S.crop, S.ev, right);
  S.comp = el('div', 'lbl-info');
  S.labs = el('div', 'lbl-row'); S.labs.style.gridTemplateColumns = 'repeat(7, 1fr)';
  S.labBtns = S.labels = null;
  S.acts = el('div', 'lbl-row'); S.acts.style.gridTemplateColumns = '1.6fr 1.3fr 1.1fr .9fr .9fr .9fr';
  const mk = (name, key, fn) => { const b = el('button', '', name); b.type = 'button'; const k = el('kbd', '', key); b.append(k);
    b.onclick = fn; S.acts.append(b); return b; };
  S.bAccept = mk('Accept', 'Enter', () => press(S, 'Enter'));
  S.bSecond = mk('Second label', 'A', () => press(S, 'a'));
  S.bUnusable = mk('Unusable', 'X', () => press(S, 'x'));
  S.bSkip = mk('Skip', 'S', () => press(S, 's'));
  S.bUndo = mk('Undo', 'U', () => press(S, 'u'));
  S.bCancel = mk('Cancel', 'Esc', () => press(S, 'Escape'));
  c.append(S.cap, S.info, S.banner, S.head, S.note, cols, S.comp, S.labs, S.acts);
}

function labelButtons(S, labels, keys) {
  if (S.labBtns) return;
  S.labels = labels; S.keys = keys;
  S.labBtns = labels.map((lab) => { const b = el('button', 'lbl-lab', lab); b.type = 'button'; b.dataset.label = lab;
    b.append(el('kbd', '', keys[lab])); b.onclick = () => press(S, keys[lab]); S.labs.append(b); return b; });
}

function preload(S, f) {  // the card's images, decoded before they are needed
  if (S.imgs.has(f.id)) return;
  const mk = (src, alt, w) => { if (!src) return null; const i = new Image(); i.alt = alt; i.dataset.face = f.id; i.src = src;
    i.decode().catch(() => {}); return i; };
  S.imgs.set(f.id, { crop: mk(f.crop, `face ${f.id}`), photo: mk(f.photo, `photo ${f.image_id}`) });
}

function receive(S, data) {
  labelButtons(S, data.labels, data.keys);
  S.data = data;
  const ack = (data.acks || {})[S.cid] || 0;
  const before = S.pending.length;
  S.pending = S.pending.filter((d) => d.seq > ack);
  if (S.blind && ack >= S.blind) { S.blind = 0; S.adopt = true; }
  S.waiting = false;  // a run has finished: the decisions pressed meanwhile go now, in one batch
  for (const f of data.window) {  // a card this page holds comes without its images (``have``)
    const was = S.cards.get(f.id);
    if (f.crop === undefined && was) { f.crop = was.crop; f.photo = was.photo; }
    if (f.crop === undefined) continue;  // (not expected: the server sends what the page said it lacks)
    S.cards.set(f.id, f); preload(S, f);
  }
  if (S.pending.length === 0 && before === 0 && S.cards.size > 200) {  // forget cards far behind
    const keep = new Set(data.window.map((f) => f.id).concat(S.history.slice(-50).map((h) => h.face)));
    for (const k of [...S.cards.keys()]) if (!keep.has(k)) { S.cards.delete(k); S.imgs.delete(k); }
  }
  let view = data.window.map((f) => f.id).filter((x) => S.cards.has(x));
  for (const d of S.pending) {  // the decisions in flight, played over the server's window
    if (d.action === 'undo') { if (d.face != null) view = [d.face].concat(view.filter((x) => x !== d.face)); }
    else view = view.filter((x) => x !== d.face);
  }
  if (!S.adopt && S.shown != null && view.includes(S.shown) && view[0] !== S.shown)  // the card on screen stays
    view = [S.shown].concat(view.filter((x) => x !== S.shown));
  S.adopt = false;
  S.view = view;
  show(S);
  if (S.pending.length) send(S);
}

function show(S) {
  const f = S.blind ? null : S.cards.get(S.view[0]);
  const d = S.data;
  const inflight = S.pending.filter((x) => x.action !== 'undo').length - S.pending.filter((x) => x.action === 'undo').length;
  S.cap.textContent = `${Math.max(0, d.left - inflight)} ${d.what || 'to review with these filters'} \u00b7 ${d.n_done + inflight} done this session` +
    (S.last ? ` \u00b7 last: ${S.last}` : (d.msg ? ` \u00b7 last: ${d.msg}` : ''));
  const was = S.revealFace != null ? (d.reveals || {})[S.revealFace] : null;  // sent once the answer is stored
  if (S.shown !== (f ? f.id : null)) { S.compound = false; S.held = []; S.nudge = ''; S.shownAt = performance.now(); }
  S.info.textContent = S.nudge || (S.reveal + (was ? ` \u00b7 the proposal was ${was}` : ''));
  S.root.dataset.inflight = String(S.pending.length);
  S.root.dataset.rev = String(d.rev);
  S.shown = f ? f.id : null;
  if (!f) {
    S.root.dataset.face = ''; S.root.dataset.live = S.blind ? '0' : '1';
    S.head.textContent = S.blind ? 'Undoing ...' : (S.pending.length || !d.empty ? 'Loading the next cards ...' : (d.empty_text || 'Nothing left to review with these filters.'));
    S.note.textContent = ''; S.banner.textContent = ''; S.banner.className = 'lbl-banner'; S.root.dataset.mode = ''; S.ev.replaceChildren(); S.crop.replaceChildren(); S.photo.replaceChildren(); S.comp.textContent = '';
    S.root.classList.toggle('lbl-wait', true);
    S.labBtns.forEach((b) => { b.disabled = true; }); [S.bAccept, S.bSecond, S.bUnusable, S.bSkip, S.bCancel].forEach((b) => { b.disabled = true; });
    S.bUndo.disabled = !!S.blind; S.open.disabled = true;
    return;
  }
  S.root.classList.toggle('lbl-wait', false);
  S.head.textContent = f.head;
  // a blind card says so, and which keys answer it: nothing is proposed, so Enter has nothing to accept
  S.root.dataset.mode = f.audit ? 'audit' : (f.hidden ? 'blind' : (f.banner ? 'suspicious' : 'review'));
  S.banner.className = 'lbl-banner' + (f.audit ? ' lbl-audit' : (f.hidden ? ' lbl-blind' : (f.banner ? ' lbl-suspect' : '')));
  S.banner.textContent = f.audit ? 'Audit: answer blind. Press the class you see (1-7), X unusable, S skip. ' +
    'Nothing is proposed, so Enter accepts nothing.' : (f.hidden ? 'Proposal hidden until you answer: press the class you see (1-7).' : (f.banner || ''));
  S.note.textContent = f.audit ? 'An audit sample: a random candidate for auto-accept; blind labels measure how right the ' +
    'auto-accepted labels are. The proposal is shown after your answer.' : '';
  preload(S, f);
  const im = S.imgs.get(f.id);
  if (im.crop) S.crop.replaceChildren(im.crop); else S.crop.replaceChildren(el('div', 'lbl-note', 'no crop stored'));
  if (im.photo) S.photo.replaceChildren(im.photo); else S.photo.replaceChildren(el('div', 'lbl-note', f.photo_missing));
  if (f.hidden) {
    const p = el('p'); p.append(el('strong', '', 'Proposal hidden until you answer.'), el('br'),
      document.createTextNode('Label what you see (1-7); the proposal is shown after the key press.'));
    S.ev.replaceChildren(p);
  } else S.ev.innerHTML = f.evidence;  // built and escaped by the server
  paintButtons(S, f);
  S.root.dataset.face = String(f.id);
  S.root.dataset.live = '1';
}

function paintButtons(S, f) {
  const shown = f.hidden ? null : f.suggestion;
  S.labBtns.forEach((b) => { b.disabled = false; b.classList.toggle('lbl-primary', b.dataset.label === shown || S.held.includes(b.dataset.label)); });
  // what Enter stores: the labels held in two-label mode, else the proposal shown
  S.bAccept.firstChild.textContent = S.held.length ? `Accept: ${S.held.join(' + ')}` :
    (shown ? `Accept: ${shown}` : (f.hidden ? 'Accept: nothing proposed (press 1-7)' : 'Accept: no proposal'));
  S.bAccept.disabled = !(shown || S.held.length);
  S.bSecond.classList.toggle('lbl-primary', S.compound);
  [S.bSecond, S.bUnusable, S.bSkip, S.bUndo].forEach((b) => { b.disabled = false; });
  S.bCancel.disabled = !S.compound; S.open.disabled = false;
  S.comp.textContent = S.compound ? 'Two labels: press two class keys (or one, then Enter). Esc cancels.' +
    (S.held.length ? ` Held: ${S.held.join(' + ')}` : '') : '';
}

function send(S) {  // one batch in flight at a time: a new trigger would preempt the run that stores the last one
  if (!S.setTrigger || S.waiting) return;
  S.waiting = true;
  S.sent = performance.now();
  S.setTrigger('decide', { cid: S.cid, decisions: S.pending, have: [...S.imgs.keys()] });
}

function decide(S, f, action, labels, accepted) {
  // ms: the face on screen until this key (the server caps idle gaps); accept: Enter took the proposal
  const d = { seq: ++S.seq, face: f.id, action, labels: labels || null, target: null,
    ms: Math.round(performance.now() - (S.shownAt || performance.now())), accept: !!accepted };
  S.pending.push(d); S.history.push({ face: f.id, seq: d.seq });
  const said = action + (labels ? ' ' + labels.join(' + ') : '');
  S.last = `face #${f.id}: ${said}`; S.nudge = '';
  S.reveal = f.hidden && action !== 'skip' ? `Face #${f.id}: you said ${said}` : '';
  S.revealFace = S.reveal ? f.id : null;
  S.view = S.view.filter((x) => x !== f.id);
  S.compound = false; S.held = [];
  show(S); send(S);
}

function undo(S) {
  const h = S.history.pop();
  const d = { seq: ++S.seq, face: h ? h.face : null, action: 'undo', labels: null, target: h ? h.seq : null };
  S.pending.push(d); S.reveal = ''; S.revealFace = null; S.compound = false; S.held = [];
  if (h) { S.view = [h.face].concat(S.view.filter((x) => x !== h.face)); S.last = `undid face #${h.face}`; }
  else S.blind = d.seq;  // beyond this page's history: the server says which face comes back
  show(S); send(S);
}

function press(S, key) {
  const f = S.blind ? null : S.cards.get(S.view[0]);
  const k = key.length === 1 ? key.toLowerCase() : key;
  if (k === 'u') { if (!S.blind) undo(S); return true; }
  if (!f) return false;
  const lab = S.labels.find((l) => S.keys[l] === k);
  if (lab) {
    if (S.compound) {
      if (!S.held.includes(lab)) S.held.push(lab);
      if (S.held.length < 2) { paintButtons(S, f); return true; }
      decide(S, f, 'label', S.held.slice(0, 2));
    } else decide(S, f, 'label', [lab]);
    return true;
  }
  if (k === 'Enter') {
    if (S.held.length) decide(S, f, 'label', S.held.slice());
    else if (!f.hidden && f.suggestion) decide(S, f, 'label', [f.suggestion], true);
    else {  // nothing to accept: the key says why instead of doing nothing
      S.nudge = `Enter accepts a proposal, and face #${f.id} has none shown: press the class you see (1-7), X unusable or S skip.`;
      show(S);
    }
    return true;
  }
  if (k === 'a') { S.compound = !S.compound; S.held = []; paintButtons(S, f); return true; }
  if (k === 'Escape') { if (!S.compound) return false; S.compound = false; S.held = []; paintButtons(S, f); return true; }
  if (k === 'x') { decide(S, f, 'unusable', null); return true; }
  if (k === 's') { decide(S, f, 'skip', null); return true; }
  return false;
}

function onKey(S, e) {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || lblTyping(e.target)) return;
  if (document.querySelector('.lbl-help.lbl-open') || !S.root.isConnected) return;
  if (press(S, e.key)) { e.preventDefault(); e.stopPropagation(); }
}
"""

_card = st.components.v2.component("labeler_fast_card", js=_JS, isolate_styles=False)


def fast_card(data: dict[str, Any], on_decide: Callable[[], None], on_open: Callable[[], None]) -> Any:
    """Mount the card with ``data`` (the window and what goes with it, see
    ``labeler.ui.views.review_fast``); ``on_decide`` / ``on_open`` run before the rerun that a batch
    of decisions / the "Open image view" button starts; the values are in
    ``st.session_state["fast_card"]``."""
    return _card(key="fast_card", data=dict(data, css=_CSS, css_id="lbl-card-css"), on_decide_change=on_decide,
                 on_open_change=on_open, height="content")
