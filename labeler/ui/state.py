"""The session state the pages share: who is labeling, the one-line message of the last action,
and which page to show. Widget keys stay with the page that owns the widget."""

from __future__ import annotations

import streamlit as st

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
