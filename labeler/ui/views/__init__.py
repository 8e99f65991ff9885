"""The app's pages, one module each. A page module has ``TITLE`` (the navigation label), ``ICON``
and ``render()`` (draws the page; called once per script run). A new page is one new module added
to ``PAGES``; the first one is the default. (Not named ``pages/``: Streamlit takes a ``pages/``
folder next to the app script for its older, file-per-page navigation.)"""

from labeler.ui.views import gallery, grid, image, overview, review_page, tracks

PAGES = (review_page, grid, image, tracks, gallery, overview)
