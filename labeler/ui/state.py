"""The session state the pages share: who is labeling, the one-line message of the last action,
and which page to show. Widget keys stay with the page that owns the widget."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


# ---- the annotator, remembered across browser sessions: the ``?annotator=`` query parameter (a
# bookmark) and a small file in the user's config folder (this machine's last name)


def config_file() -> Path:
    """``$XDG_CONFIG_HOME/labeler/ui.json`` (``~/.config/labeler/ui.json`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "labeler" / "ui.json"


def remembered_annotator() -> str:
    """The name in the query parameter, else the one in the config file, else ""."""
    name = (st.query_params.get("annotator") or "").strip()
    if name:
        return name
    try:
        return str(json.loads(config_file().read_text(encoding="utf-8")).get("annotator", "")).strip()
    except (OSError, ValueError, AttributeError):
        return ""


def remember_annotator(name: str) -> None:
    """Keep ``name`` in the URL and in the config file (a write failure only loses the memory)."""
    st.query_params["annotator"] = name
    p = config_file()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"annotator": name}), encoding="utf-8")
    except OSError:
        pass


def forget_annotator() -> None:
    st.query_params.pop("annotator", None)
    try:
        config_file().unlink()
    except OSError:
        pass
