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
from labeler.ui.keys import key_help
from labeler.ui.views import PAGES
from labeler.ui.resources import db_url
from labeler.ui.state import keep_cookie, remembered_annotator, sign_in_as, sign_out, who

#: the keys of every page, for the ``?`` overlay
GLOBAL_KEYS = (("?", "show / hide this help"),)


def set_annotator() -> None:
    name = (st.session_state.get("name_input") or "").strip()
    if name:
        sign_in_as(name)


def sign_in() -> None:
    """The first screen: the name recorded with every label (a form: Enter in the box starts too)."""
    st.title("labeler review")
    st.caption(f"database: {S.mask_url(db_url())}")
    with st.form("sign_in", border=False):
        st.text_input("Your name (recorded with every label)", key="name_input", max_chars=S.MAX_ANNOTATOR)
        st.form_submit_button("Start", key="start", on_click=set_annotator, type="primary")
    keep_cookie()  # no name in this session: this browser forgets its last one


def sign_in_pages() -> list[StreamlitPage]:
    """Before a name is known every page's address shows the sign-in form (a link to ``/overview``
    shared with a new annotator is no "page not found"); after Start, that page opens."""

    def at(url_path: str):
        def page() -> None:
            sign_in()

        page.__name__ = f"sign_in_{url_path.replace('-', '_')}"
        return page

    return [st.Page(at("start"), title="Sign in", url_path="start", default=True),  # the root (see forwards)
            st.Page(at("sign-in"), title="Sign in", url_path="sign-in"),
            *(st.Page(at(m.TITLE.lower()), title=m.TITLE, url_path=m.TITLE.lower()) for m in PAGES)]


def forwards(to: StreamlitPage) -> list[StreamlitPage]:
    """Hidden pages that go on to ``to`` (the first page) with the link's query parameters: the
    default page, served at the root (Streamlit serves a default page there only, so the first page
    is not the default: it keeps its own address, ``/review``, as the README and shared links give
    it), and ``/sign-in`` (a link kept from before the name was known)."""

    def at(url_path: str, default: bool):
        def page() -> None:
            st.switch_page(to, query_params=dict(st.query_params))

        page.__name__ = f"forward_{url_path.replace('-', '_')}"
        return st.Page(page, title=to.title, url_path=url_path, default=default, visibility="hidden")

    return [at("start", True), at("sign-in", False)]


def navigation() -> StreamlitPage:
    """The sidebar's page links. ``st.session_state["page"]`` holds the title of the page shown; a
    callback that sets it to another title (``labeler.ui.state.goto``) switches there."""
    pages = {m.TITLE: st.Page(m.render, title=m.TITLE, icon=m.ICON, url_path=m.TITLE.lower()) for m in PAGES}
    nav = st.navigation(list(pages.values()) + forwards(pages[PAGES[0].TITLE]))
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
        name = remembered_annotator()
        if name:
            sign_in_as(name)
    if not who():
        st.navigation(sign_in_pages(), position="hidden").run()
        return
    if st.query_params.get("annotator") != who():
        st.query_params["annotator"] = who()
    keep_cookie()
    nav = navigation()
    sb = st.sidebar
    sb.markdown(f"Annotator: **{who()}**")
    sb.button("Change name", key="change_name", on_click=sign_out)
    sb.caption("Press **?** for the keys of this page.")
    page = next((m for m in PAGES if m.TITLE == nav.title), None)
    key_help(f"Keys: {nav.title}", tuple(getattr(page, "KEYS_HELP", ())) + GLOBAL_KEYS)
    nav.run()


# no "Deploy" button: the launcher passes --client.toolbarMode minimal; this covers `streamlit run`
if __name__ == "__main__":  # Streamlit runs the page as __main__; a spawned worker process re-imports it as __mp_main__
    st.set_option("client.toolbarMode", "minimal")
    main()
