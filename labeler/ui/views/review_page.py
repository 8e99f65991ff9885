"""The Review page: its sidebar settings, then the card: the browser card (``review_fast``, the default)
or the one the server draws on every key press (``review``; ``?card=server``). Both card modules
build on ``review``; this page sits above them both."""

from __future__ import annotations

import streamlit as st

from labeler.ui.flowbar import flow_bar, retrain_when_due
from labeler.ui.views import review as R
from labeler.ui.views.review_fast import fast_area

TITLE = R.TITLE
ICON = R.ICON


def _keep(widget: str, key: str) -> None:
    st.session_state[key] = st.session_state[widget]


def render() -> None:
    if "audits_first" not in st.session_state and st.query_params.get("audits") == "0":  # a link that opts out
        st.session_state["audits_first"] = False
    if "fast_card_on" not in st.session_state:  # ?card=server: the card drawn by the server (one rerun per key)
        st.session_state["fast_card_on"] = st.query_params.get("card") != "server"
    kind = R.choose_queue()
    f = R.filters(kind)
    sb = st.sidebar
    # settings kept under their own keys: a widget's state is dropped while another page is shown
    sb.toggle("Hide the proposal until I answer", key="w_hide_mode", value=bool(st.session_state.get("hide_mode", False)),
              on_change=_keep, args=("w_hide_mode", "hide_mode"),
              help="Against anchoring: the card shows the face and the photo only; the proposal appears after your key press.")
    sb.checkbox("Audit samples first", key="w_audits_first", value=bool(st.session_state.get("audits_first", True)),
                on_change=_keep, args=("w_audits_first", "audits_first"),
                help="Blind labels of random candidates for auto-accept measure how right the auto-accepted labels are.")
    sb.toggle("Fast card", key="w_fast_card", value=bool(st.session_state.get("fast_card_on", True)),
              on_change=_keep, args=("w_fast_card", "fast_card_on"),
              help="The card and its keys run in the browser (the next card shows at once, the decision is stored "
                   "in the background); off: the card is drawn by the server on every key press.")
    flow_bar()
    retrain_when_due()
    if st.session_state.get("fast_card_on", True):
        fast_area(f, kind)
    else:
        R.card_area(f, kind)
