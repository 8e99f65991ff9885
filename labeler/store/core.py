"""TEMPORARY: the old single-module store, re-exported so that ``from labeler.store import core``
keeps working while ui/, training/ and their tests switch to ``from labeler.store import ...``;
delete it then. The store is schema.py (tables), engine.py (URL, engine, migrations, Store),
images.py (ingest, rules), faces.py (autolabel writes), records.py (face records, the vote, the
accepted label), imports.py, review.py (the UI), models.py, stats.py.
"""

from __future__ import annotations

from labeler.store.engine import DEFAULT_DB, CHUNK, Store, alembic_config, chunks, current_revision, head_revision, latest_ids, make_engine, resolve_url, upgrade  # noqa: F401
from labeler.store.images import dumps  # noqa: F401
from labeler.store.imports import add_import_annotations, faces_by_key, image_faces, images_by_path, ingest_roots  # noqa: F401
from labeler.store.records import accepted_label, current_annotations, face_crops, iter_face_records, vote  # noqa: F401
from labeler.store.review import (  # noqa: F401
    REVIEW_KINDS,
    _decision_rows,
    accepted_labels,
    add_annotation,
    add_annotations,
    face_card,
    gallery_faces,
    image_list,
    image_view,
    review_queue,
    review_queue_count,
    source_folders,
    undo_last,
)
from labeler.store.schema import Annotation, Base, DecisionRow, Embedding, Face, Image, ImagePath, ModelVersion, Proposal, Setting, utcnow  # noqa: F401

REVIEW_REASON_KINDS = REVIEW_KINDS  # TEMPORARY: the UI's old name for the review kinds

