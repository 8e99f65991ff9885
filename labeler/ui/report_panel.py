"""The data report on the Overview page: the charts of `labeler report` (labeler.reports.datastore),
beside FER2013 train, in a frame, with the page to download. Built at once for projects up to
:data:`AUTO_FACES` faces (it reads every crop), on a button above that; cached for a minute."""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from labeler.reports.datareport import build_report
from labeler.reports.datastore import project_summary
from labeler.ui.resources import db_url, get_store

AUTO_FACES = 5000


@st.cache_data(ttl=60, show_spinner="building the data report")
def report_html(url: str) -> str:
    return build_report(project_summary(get_store(url)))


def render(n_faces: int) -> None:
    st.markdown("**Data report**: this project beside FER2013 train (class balance, face size, yaw, sharpness, "
                "brightness, colour, flags, source folders)")
    if n_faces > AUTO_FACES and not st.session_state.get("dr_show"):
        st.button(f"Build the data report ({n_faces} faces)", key="dr_build",
                  on_click=lambda: st.session_state.update(dr_show=True))
        return
    html = report_html(db_url())
    st.download_button("Download the report (HTML)", html, file_name="report.html", mime="text/html", key="dr_dl")
    components.html(html, height=900, scrolling=True)
