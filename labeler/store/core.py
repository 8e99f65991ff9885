"""TEMPORARY: the old single-module store, re-exported so that ``from labeler.store import core``
keeps working while ui/, training/ and their tests switch to ``from labeler.store import ...``;
delete it then. The store is schema.py (tables), engine.py (URL, engine, migrations, Store),
images.py (ingest, rules), faces.py (autolabel writes), records.py (face records, the vote, the
accepted label), imports.py, review.py (the UI), models.py, stats.py.
"""

from labeler.store import *  # noqa: F401,F403
