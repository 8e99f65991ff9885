"""The session state the pages share: who is labeling, the one-line message of the last action,
and which page to show. Widget keys stay with the page that owns the widget."""

from __future__ import annotations

from urllib.parse import unquote

import streamlit as st

from labeler import store as S

#: every human action is an Annotation row with this source
SOURCE = "ui"


def who() -> str:
    """The annotator's name ("" before they named themself)."""
    return st.session_state.get("annotator", "")


def flash(msg: str) -> None:
    """Say what the last action did (shown once, on the next run)."""
    st.session_state["flash"] = msg


def take_flash() -> str | None:
    return st.session_state.pop("flash", None)


def goto(page: str) -> None:
    """Show ``page`` (a title of ``labeler.ui.views.PAGES``) on the next run; for button callbacks."""
    st.session_state["page"] = page


# ---- the annotator: one per browser, never one per server. A browser session knows it from the
# ``?annotator=`` query parameter (a bookmark, a shared link) or else from the ``labeler_annotator``
# cookie that this browser got at its last sign-in; a new browser (another person) is asked.

#: the cookie that keeps this browser's name (read by the server when the page opens)
COOKIE = "labeler_annotator"
COOKIE_DAYS = 30

_COOKIE_JS = """
export default function(component) {
  const { data } = component;
  const want = data.name ? `${data.cookie}=${encodeURIComponent(data.name)}` : '';
  const have = document.cookie.split('; ').find((c) => c.startsWith(data.cookie + '=')) || '';
  if (want && have !== want) document.cookie = `${want}; path=/; max-age=${data.max_age}; SameSite=Lax`;
  else if (!want && have) document.cookie = `${data.cookie}=; path=/; max-age=0; SameSite=Lax`;
}
"""
_cookie = st.components.v2.component("labeler_annotator_cookie", js=_COOKIE_JS)


def _valid(name: str) -> bool:
    return bool(name) and len(name) <= S.MAX_ANNOTATOR and name.isprintable()  # what S.clean_annotator takes


def remembered_annotator() -> str:
    """This browser's name: the query parameter, else the cookie (unless this session signed out),
    else ""."""
    name = (st.query_params.get("annotator") or "").strip()
    if not name and not st.session_state.get("signed_out"):
        raw = st.context.cookies.get(COOKIE)
        name = unquote(raw).strip() if isinstance(raw, str) else ""  # (no cookies outside a browser: AppTest)
    return name if _valid(name) else ""


def sign_in_as(name: str) -> None:
    """This session labels as ``name``; the URL and this browser's cookie (:func:`keep_cookie`) keep it."""
    st.session_state["annotator"] = name
    st.session_state.pop("signed_out", None)
    st.query_params["annotator"] = name


def sign_out() -> None:
    """Forget the name in this session, its URL and (on the next run) this browser's cookie."""
    st.session_state.pop("annotator", None)
    st.session_state["signed_out"] = True  # the cookie the page was opened with is not read again
    st.query_params.pop("annotator", None)


def keep_cookie() -> None:
    """Keep this browser's cookie equal to the session's name (removed when there is none)."""
    _cookie(key="annotator_cookie", data={"name": who(), "cookie": COOKIE, "max_age": COOKIE_DAYS * 86400}, height="content")
