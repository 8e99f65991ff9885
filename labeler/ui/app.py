"""The review app (Streamlit): ``streamlit run labeler/ui/app.py -- --db URL`` or ``labeler ui``.

This script only sets the page up, asks who is labeling and hands over to the page chosen in the
sidebar (``st.navigation``); each page is one module of ``labeler.ui.views``. Every human action is
one append-only Annotation row (annotator, time, source "ui"); the model is never called from here.
Queries live in ``labeler.store``, the arithmetic of the overview in ``labeler.reports.progress``.
"""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from labeler import store as S
from labeler.ui.views import PAGES
from labeler.ui.resources import db_url
from labeler.ui.state import who


def set_annotator() -> None:
    name = (st.session_state.get("name_input") or "").strip()
    if name:
        st.session_state["annotator"] = name


def change_annotator() -> None:
    st.session_state.pop("annotator", None)


def sign_in() -> None:
    """The first screen: the name recorded with every label."""
    st.title("labeler review")
    st.caption(f"database: {S.mask_url(db_url())}")
    st.text_input("Your name (recorded with every label)", key="name_input", max_chars=100)
    st.button("Start", key="start", on_click=set_annotator, type="primary")


def navigation() -> StreamlitPage:
    """The sidebar's page links. ``st.session_state["page"]`` holds the title of the page shown; a
    callback that sets it to another title (``labeler.ui.state.goto``) switches there."""
    pages = {m.TITLE: st.Page(m.render, title=m.TITLE, icon=m.ICON, url_path=m.TITLE.lower(), default=(m is PAGES[0]))
             for m in PAGES}
    nav = st.navigation(list(pages.values()))
    want = st.session_state.get("page")
    if want in pages and want != st.session_state.get("page_shown"):  # asked for by code (goto)
        st.session_state["page_shown"] = want
        if nav.title != want:
            st.switch_page(pages[want])
    elif nav.title != want:  # the person clicked a link
        st.session_state["page"] = st.session_state["page_shown"] = nav.title
    return nav


def main() -> None:
    st.set_page_config(page_title="labeler review", layout="wide")
    if not who():
        st.navigation([st.Page(sign_in, title="Sign in", url_path="sign-in")], position="hidden").run()
        return
    nav = navigation()
    sb = st.sidebar
    sb.markdown(f"Annotator: **{who()}**")
    sb.button("Change name", key="change_name", on_click=change_annotator)
    nav.run()


main()
