"""Two small keyboard components (``st.components.v2``: inline JavaScript in the app's page, no
iframe, so they hear keys wherever the focus is, except in text fields):

- ``face_grid``: a page of face crops; arrows move the cursor, space (or a click) marks the face
  under it as wrong, Enter confirms the page. Marking is instant (in the browser); only Enter
  talks to the server, with the page's key and the marked face ids.
- ``key_help``: the keyboard help overlay, opened and closed with ``?`` (Esc closes it). It also
  hands the focus back to the page after a click on a control that is not typed into (a toggle, a
  checkbox, a select box once its list closed), so that the page's keys work right after it.

Keys are the page's unless the focus is where one types (``TYPING_JS``).
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Optional, Sequence

import streamlit as st

#: JavaScript: is ``t`` (a key event's target) a place where one types? A text box, a number box, an
#: open list (a select box's options shown) are; a checkbox, a toggle, a radio, a slider, a button and
#: a select box whose list is closed are not: the keys then belong to the page.
TYPING_JS = """
function lblTyping(t) {
  if (!t || !t.tagName) return false;
  if (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT') return true;
  if (t.tagName !== 'INPUT') return false;
  if (/^(checkbox|radio|range|button|submit|reset|color|file|image)$/.test(t.type)) return false;
  if (t.getAttribute('role') === 'combobox') return t.getAttribute('aria-expanded') === 'true';
  return true;
}
"""

_GRID_CSS = """
.lbl-grid { display: grid; gap: 6px; user-select: none; }
.lbl-tile { position: relative; border: 3px solid transparent; border-radius: 6px; cursor: pointer; line-height: 0; }
.lbl-tile img { width: 100%; height: auto; aspect-ratio: 1; object-fit: cover; border-radius: 3px; }
.lbl-tile.lbl-cur { border-color: #1c83e1; }
.lbl-tile.lbl-marked img { opacity: 0.45; }
.lbl-tile.lbl-marked::after { content: "\\2715"; position: absolute; top: 2px; right: 6px; color: #ff2b2b;
  font: bold 26px/1.2 sans-serif; text-shadow: 0 0 3px #fff; }
.lbl-tile .lbl-cap { position: absolute; left: 3px; bottom: 3px; background: rgba(0,0,0,.6); color: #fff;
  font: 11px/1.3 sans-serif; padding: 0 4px; border-radius: 3px; }
.lbl-grid-top { display: flex; align-items: center; gap: 14px; margin: 4px 0 8px; }
.lbl-grid-bar { font: 14px/1.6 sans-serif; }
.lbl-grid-ok { padding: 6px 14px; font: 15px sans-serif; border-radius: 8px; border: 1px solid #ff4b4b;
  background: #ff4b4b; color: #fff; cursor: pointer; }
.lbl-grid.lbl-sent { opacity: .5; pointer-events: none; }
"""

_GRID_JS = TYPING_JS + """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  if (!document.getElementById(data.css_id)) {  // the styles, once per page (the css= of a non-isolated component is not applied)
    const css = document.createElement('style'); css.id = data.css_id; css.textContent = data.css; document.head.appendChild(css);
  }
  parentElement.replaceChildren();
  const top = document.createElement('div'); top.className = 'lbl-grid-top';  // above the grid: on screen without scrolling
  const bar = document.createElement('div'); bar.className = 'lbl-grid-bar';
  const grid = document.createElement('div'); grid.className = 'lbl-grid';
  grid.dataset.page = data.page;
  grid.style.gridTemplateColumns = `repeat(${data.cols}, minmax(${data.size}px, 1fr))`;
  parentElement.append(top, grid);
  const faces = data.faces; const marked = new Set(); let cur = 0; let sent = false;
  const tiles = faces.map((f, i) => {
    const t = document.createElement('div'); t.className = 'lbl-tile'; t.dataset.face = f.id;
    t.innerHTML = `<img alt="face ${f.id}" src="${f.src}">` + (f.cap ? `<span class="lbl-cap">${f.cap}</span>` : '');
    if (f.cap) t.title = `face #${f.id}: the model gives ${data.label} ${f.cap}`;
    t.onclick = () => { if (!sent) { cur = i; toggle(i); paint(); } };
    grid.appendChild(t); return t;
  });
  function toggle(i) { const id = faces[i].id; if (marked.has(id)) marked.delete(id); else marked.add(id); }
  function paint() {
    tiles.forEach((t, i) => { t.classList.toggle('lbl-cur', i === cur); t.classList.toggle('lbl-marked', marked.has(faces[i].id)); });
    bar.textContent = `${faces.length} faces proposed as ${data.label} \\u00b7 ${marked.size} marked wrong \\u00b7 ` +
      `arrows move, space marks, Enter confirms the page \\u00b7 the number on a face: the model's probability of ${data.label}`;
    grid.dataset.marked = [...marked].join(',');
  }
  const btn = document.createElement('button'); btn.className = 'lbl-grid-ok'; btn.type = 'button';
  btn.textContent = 'Confirm page (Enter)'; btn.onclick = () => { if (!sent) confirm(); };
  top.append(btn, bar);
  function confirm() { sent = true; btn.disabled = true; grid.classList.add('lbl-sent'); setTriggerValue('confirm', { page: data.page, marked: [...marked] }); }
  const onKey = (e) => {
    if (sent || !faces.length || e.ctrlKey || e.metaKey || e.altKey || lblTyping(e.target)) return;
    const n = faces.length, c = data.cols;
    if (e.key === 'ArrowRight') cur = Math.min(n - 1, cur + 1);
    else if (e.key === 'ArrowLeft') cur = Math.max(0, cur - 1);
    else if (e.key === 'ArrowDown') cur = Math.min(n - 1, cur + c);
    else if (e.key === 'ArrowUp') cur = Math.max(0, cur - c);
    else if (e.key === ' ') toggle(cur);
    else if (e.key === 'Enter') { e.preventDefault(); e.stopPropagation(); confirm(); return; }
    else return;
    e.preventDefault(); e.stopPropagation(); paint();
    tiles[cur].scrollIntoView({ block: 'nearest' });
  };
  document.addEventListener('keydown', onKey, true);
  paint();
  grid.dataset.ready = '1';
  return () => document.removeEventListener('keydown', onKey, true);
}
"""

_HELP_CSS = """
.lbl-help { position: fixed; inset: 0; background: rgba(0,0,0,.45); z-index: 1000000; display: none;
  align-items: center; justify-content: center; }
.lbl-help.lbl-open { display: flex; }
.lbl-help-box { background: #fff; color: #222; border-radius: 10px; padding: 18px 24px; max-width: 640px;
  font: 15px/1.5 sans-serif; box-shadow: 0 6px 30px rgba(0,0,0,.3); }
.lbl-help-box h3 { margin: 0 0 8px; font-size: 18px; }
.lbl-help-box td { padding: 2px 14px 2px 0; vertical-align: top; }
.lbl-help-box kbd { background: #eee; border: 1px solid #bbb; border-radius: 4px; padding: 0 6px; font: 13px monospace; }
"""

_HELP_JS = TYPING_JS + """
function lblRelease() {  // after a click, the focus goes back to the page unless it is where one types
  const a = document.activeElement;
  if (a && a !== document.body && !lblTyping(a) && a.closest('[data-testid="stSidebar"], [data-testid="stMain"]')) a.blur();
}

export default function(component) {
  const { data } = component;
  if (!window.__lblRelease) {  // once per page: a control clicked (a toggle, a checkbox, a class chosen in a
    // select box, a button) keeps the focus, and the keys typed next would go to it instead of the page
    window.__lblRelease = () => { setTimeout(lblRelease, 0); setTimeout(lblRelease, 150); };
    document.addEventListener('click', window.__lblRelease, true);
  }
  if (!document.getElementById(data.css_id)) {  // the styles, once per page (the css= of a non-isolated component is not applied)
    const css = document.createElement('style'); css.id = data.css_id; css.textContent = data.css; document.head.appendChild(css);
  }
  document.querySelectorAll('.lbl-help').forEach(n => n.remove());
  const ov = document.createElement('div'); ov.className = 'lbl-help'; ov.setAttribute('role', 'dialog');
  const esc = (s) => String(s).replace(/[&<>]/g, ch => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'}[ch]));
  const rows = data.keys.map(([k, what]) => `<tr><td><kbd>${esc(k)}</kbd></td><td>${esc(what)}</td></tr>`).join('');
  ov.innerHTML = `<div class="lbl-help-box"><h3>${esc(data.title)}</h3><table>${rows}</table>` +
    `<p style="margin:10px 0 0;color:#666">? or Esc closes this</p></div>`;
  ov.onclick = () => ov.classList.remove('lbl-open');
  document.body.appendChild(ov);
  const onKey = (e) => {
    if (lblTyping(e.target)) return;
    if (e.key === '?') { ov.classList.toggle('lbl-open'); e.preventDefault(); e.stopPropagation(); }
    else if (e.key === 'Escape' && ov.classList.contains('lbl-open')) { ov.classList.remove('lbl-open'); e.preventDefault(); e.stopPropagation(); }
    else if (ov.classList.contains('lbl-open')) { e.stopPropagation(); }
  };
  document.addEventListener('keydown', onKey, true);
  return () => { document.removeEventListener('keydown', onKey, true); ov.remove(); };
}
"""

_grid = st.components.v2.component("labeler_face_grid", js=_GRID_JS, isolate_styles=False)
_help = st.components.v2.component("labeler_key_help", js=_HELP_JS, isolate_styles=False)


def data_uri(img: Optional[bytes]) -> str:
    """An image's bytes as a data: URI (PNG or JPEG by their magic bytes); "" for none."""
    if not img:
        return ""
    mime = "image/png" if img[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(img).decode("ascii")


def face_grid(page: str, label: str, faces: Sequence[tuple[int, Optional[bytes], str]], cols: int, size: int,
              on_confirm: Callable[[], None]) -> Any:
    """Show a grid page: ``faces`` as (face_id, crop bytes, caption). ``on_confirm`` runs when Enter
    was pressed; the result's ``confirm`` is then ``{"page": page, "marked": [face ids]}``."""
    data = {"page": page, "label": label, "cols": int(cols), "size": int(size), "css": _GRID_CSS, "css_id": "lbl-grid-css",
            "faces": [{"id": int(f), "src": data_uri(c), "cap": cap} for f, c, cap in faces]}
    return _grid(key=f"grid_{page}", data=data, on_confirm_change=on_confirm, height="content")


def key_help(title: str, keys: Sequence[tuple[str, str]]) -> None:
    """The ``?`` overlay listing ``keys`` as (key, what it does)."""
    _help(key="key_help", data={"title": title, "keys": [list(k) for k in keys], "css": _HELP_CSS, "css_id": "lbl-help-css"},
          height="content")
